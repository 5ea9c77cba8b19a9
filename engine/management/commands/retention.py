"""`manage.py retention`: the housekeeping the beat runs hourly, now (from cron, or after
lowering the retention settings): old finished batches and sent webhook deliveries."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from engine.services.retention import delete_expired_records


class Command(BaseCommand):
    help = (
        "Delete batches that finished more than BATON_BATCH_RETENTION_DAYS ago (with their "
        "items) and delivered or failed webhook deliveries written more than "
        "BATON_WEBHOOK_DELIVERY_RETENTION_DAYS ago (0: keep them forever)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        done = delete_expired_records()
        self.stdout.write(
            f"Deleted {done.batches} batches ({done.batch_items} items; retention "
            f"{settings.BATON_BATCH_RETENTION_DAYS:g} days) and {done.webhook_deliveries} "
            f"webhook deliveries (retention {settings.BATON_WEBHOOK_DELIVERY_RETENTION_DAYS:g} "
            "days)."
        )
