"""`manage.py tasks`: list human tasks, all of them or those one user can act on (read-only)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from engine.management.commands.deploy import user_named
from engine.management.commands.instances import positive_int, write_table
from engine.models import HumanTask
from engine.selectors import tasks_for_user, with_listed_instances
from processes.models import ProcessDefinition

STATUSES = [HumanTask.Status.OPEN, HumanTask.Status.CLAIMED, HumanTask.Status.COMPLETED]


class Command(BaseCommand):
    help = (
        "List human tasks: id, name, process key, business key, assignee, candidate groups, "
        "status. Without --status, open and claimed tasks. With --user, only the tasks that user "
        "can act on (assignee or candidate), or with --status completed those they completed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user", metavar="USERNAME", help="Only tasks this user can act on (or completed)."
        )
        parser.add_argument(
            "--status",
            choices=[str(s) for s in STATUSES],
            help="Only tasks in this status (default: open and claimed).",
        )
        parser.add_argument(
            "--limit",
            type=positive_int,
            default=50,
            metavar="N",
            help="Show at most N tasks (default 50).",
        )

    @staticmethod
    def _listed(tasks: Any, *, by_user: bool) -> list[HumanTask]:
        """The tasks to show, with their instances' business keys."""
        return with_listed_instances(list(tasks)) if by_user else list(tasks)

    def handle(self, *args: Any, **options: Any) -> None:
        status: str | None = options["status"]
        if options["user"]:
            tasks = tasks_for_user(user_named(options["user"]), status=status)
        else:
            tasks = (
                HumanTask.objects.select_related("instance__definition")
                .defer(
                    "form",
                    "submitted_data",
                    "instance__state",
                    "instance__variables",
                    *ProcessDefinition.bulk_fields("instance__definition__"),
                )
                .order_by("-priority", "created_at", "id")
            )
            if status is None:
                tasks = tasks.filter(status__in=HumanTask.ACTIVE_STATUSES)
        if status is not None:
            tasks = tasks.filter(status=status)
        rows = [
            [
                str(task.pk),
                task.name or task.element_id,
                task.process_key,
                task.instance.business_key or "-",
                task.assignee or "-",
                ",".join(task.candidate_groups) or "-",
                task.status,
            ]
            for task in self._listed(tasks[: options["limit"]], by_user=bool(options["user"]))
        ]
        if not rows:
            self.stdout.write("No tasks.")
            return
        write_table(
            self.stdout,
            ["ID", "NAME", "PROCESS", "BUSINESS KEY", "ASSIGNEE", "CANDIDATE GROUPS", "STATUS"],
            rows,
        )
