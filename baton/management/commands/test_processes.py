"""`manage.py test_processes DIR`: run SpiffArena's process-model unit tests (every
`test_*.json` beside a `.bpmn` under DIR) through Baton's services, on a test database of
their own as `manage.py test` makes one, and report per case, with the process coverage as a
table; the coverage is then stored for the process pages (unless --no-store)."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from baton.testing.cases import CaseResult, run_cases
from baton.testing.coverage import Coverage
from baton.testing.storage import store_coverage


class Command(BaseCommand):
    help = "Run the SpiffArena test files (test_*.json) under DIR and report per case."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--json", type=Path, help="also write the coverage as JSON here")
        parser.add_argument(
            "--no-store", action="store_true", help="do not store the coverage for the pages"
        )
        parser.add_argument(
            "--keepdb", action="store_true", help="keep the test database between runs"
        )

    def _report(self, result: CaseResult) -> None:
        if result.passed:
            self.stdout.write(f"PASS {result.name}")
        else:
            self.stdout.write(f"FAIL {result.name}: {result.message}")

    def handle(self, *args: Any, **options: Any) -> None:
        directory: Path = options["directory"]
        if not directory.is_dir():
            raise CommandError(f"{directory} is not a directory.")
        # The cases deploy and start instances: never in the real database.
        real_name = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=options["keepdb"])
        try:
            results, coverage = run_cases(directory, self._report)
        finally:
            connection.creation.destroy_test_db(real_name, verbosity=0, keepdb=options["keepdb"])
        self._finish(results, coverage, options)

    def _finish(self, results: list[CaseResult], coverage: Coverage, options: Any) -> None:
        if coverage:
            self.stdout.write("")
            self.stdout.write(coverage.table())
        if options["json"]:
            coverage.write(options["json"])
        if coverage and not options["no_store"]:
            stored = store_coverage(coverage, f"test_processes {options['directory']}")
            self.stdout.write(f"Stored the coverage of {stored} process(es).")
        failed = [r for r in results if not r.passed]
        self.stdout.write(f"{len(results) - len(failed)} passed, {len(failed)} failed.")
        if not results:
            raise CommandError(f"No test_*.json beside a .bpmn under {options['directory']}.")
        if failed:
            raise CommandError(f"{len(failed)} of {len(results)} cases failed.")
