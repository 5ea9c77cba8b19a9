from typing import Any

from django.core.management.base import BaseCommand

from engine.services.demo_accounts import reset_demo_accounts
from processes.services import deploy_examples


class Command(BaseCommand):
    help = (
        "Deploy the example diagrams and (re)create the demo accounts with fresh passwords "
        "and API tokens."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        created = deploy_examples()
        for definition in created:
            self.stdout.write(f"Deployed example {definition.key} v{definition.version}")
        self.stdout.write("\nDemo accounts (new passwords and API tokens on every start):")
        self.stdout.write(f"  {'user':<10} {'password':<18} {'groups':<18} API token")
        for account in reset_demo_accounts():
            self.stdout.write(
                f"  {account.username:<10} {account.password:<18} "
                f"{','.join(account.groups):<18} {account.token}"
            )
