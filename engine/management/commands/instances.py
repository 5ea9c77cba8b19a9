"""`manage.py instances`: list process instances, newest first (read-only)."""

import argparse
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser, OutputWrapper
from django.utils import timezone

from engine.models import ProcessInstance


def positive_int(text: str) -> int:
    """argparse type of `--limit`: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def format_time(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def write_table(out: OutputWrapper, headers: Sequence[str], rows: list[list[str]]) -> None:
    """Left-aligned columns as wide as their widest cell."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    for cells in [list(headers), ["-" * w for w in widths], *rows]:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip())


class Command(BaseCommand):
    help = (
        "List process instances, newest first: id, process key and version, status, business "
        "key, creation time. Read-only; the shell sees every instance."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status", choices=ProcessInstance.Status.values, help="Only instances in this status."
        )
        parser.add_argument("--definition", metavar="KEY", help="Only instances of this process.")
        parser.add_argument("--business-key", metavar="BK", help="Only this business key.")
        parser.add_argument(
            "--limit",
            type=positive_int,
            default=50,
            metavar="N",
            help="Show at most N instances (default 50).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        instances = (
            ProcessInstance.objects.select_related("definition")
            .only(
                "id",
                "status",
                "business_key",
                "created_at",
                "definition__key",
                "definition__version",
            )
            .order_by("-created_at", "id")
        )
        if options["status"]:
            instances = instances.filter(status=options["status"])
        if options["definition"]:
            instances = instances.filter(definition__key=options["definition"])
        if options["business_key"]:
            instances = instances.filter(business_key=options["business_key"])
        rows = [
            [
                str(instance.pk),
                f"{instance.definition.key} v{instance.definition.version}",
                instance.status,
                instance.business_key or "-",
                format_time(instance.created_at),
            ]
            for instance in instances[: options["limit"]]
        ]
        if not rows:
            self.stdout.write("No instances.")
            return
        write_table(self.stdout, ["ID", "PROCESS", "STATUS", "BUSINESS KEY", "CREATED"], rows)
