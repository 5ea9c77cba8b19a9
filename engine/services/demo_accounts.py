"""Demo accounts for the development command. Passwords and API tokens are random on every
start and only ever printed, never stored in the repository."""

import secrets
from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction
from rest_framework.authtoken.models import Token

# username -> the groups that give the account its role
DEMO_ACCOUNTS: dict[str, tuple[str, ...]] = {
    "designer": ("designers",),
    "operator": ("operators",),
    "approver1": ("managers",),
    "approver2": ("managers", "legal"),
}


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    groups: tuple[str, ...]
    token: str


# What the operators group may see in the admin site.
OPERATOR_PERMISSIONS = (
    "view_processinstance",
    "view_servicejob",
    "view_humantask",
    "view_instanceevent",
)


def reset_demo_accounts() -> list[DemoAccount]:
    """Create the demo users and groups if missing and give each a fresh random password and
    a fresh API token (the previous start's token stops working)."""
    accounts = []
    with transaction.atomic():
        operators, _ = Group.objects.get_or_create(name="operators")
        operators.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="engine", codename__in=OPERATOR_PERMISSIONS
            )
        )
        for username, group_names in DEMO_ACCOUNTS.items():
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.invalid"}
            )
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.is_staff = "operators" in group_names or "designers" in group_names
            user.save()
            groups = [Group.objects.get_or_create(name=name)[0] for name in group_names]
            user.groups.set(groups)
            Token.objects.filter(user=user).delete()
            token = Token.objects.create(user=user)
            accounts.append(DemoAccount(username, password, group_names, token.key))
    return accounts
