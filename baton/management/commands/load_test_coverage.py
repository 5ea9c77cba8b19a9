"""`manage.py load_test_coverage FILE`: store a pytest run's process coverage report
(`pytest --baton-coverage=FILE`, e.g. from CI) so that the process pages show it."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from baton.testing.coverage import Coverage
from baton.testing.storage import store_coverage


class Command(BaseCommand):
    help = "Store a process coverage report (pytest --baton-coverage=FILE) for the process pages."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--source", default="", help="What to call the run (default: FILE)")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            coverage = Coverage.from_json(json.loads(path.read_text()))
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        except ValueError as exc:  # JSONDecodeError included
            raise CommandError(f"{path}: {exc}") from None
        stored = store_coverage(coverage, options["source"] or path.name)
        self.stdout.write(coverage.table())
        self.stdout.write(f"Stored the coverage of {stored} process(es).")
