"""Who may do what with process definitions. Checked by the services, not only the views."""

from engine.actors import Person

DESIGNERS_GROUP = "designers"


def is_member(user: Person, group: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return user.groups.filter(name=group).exists()


def can_deploy(user: Person) -> bool:
    return is_member(user, DESIGNERS_GROUP)
