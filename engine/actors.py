"""Who acts on the engine: a signed-in user, an anonymous request, or None for the system."""

from django.contrib.auth.models import AnonymousUser, User

Person = User | AnonymousUser
Actor = Person | None


def as_user(actor: Actor) -> User | None:
    """The user to record as the actor, or None for anonymous and system actions."""
    return actor if isinstance(actor, User) else None
