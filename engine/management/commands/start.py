"""`manage.py start KEY`: start a process instance and show where it waits."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from engine.exceptions import EngineError
from engine.management.commands.deploy import user_named
from engine.models import HumanTask
from engine.selectors import instance_detail
from engine.services import start_instance


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON that Postgres stores; such values stay strings.
    raise ValueError(name)


def parse_value(text: str) -> Any:
    """JSON when the text parses as JSON (`250`, `true`, `[1, 2]`), else the text itself."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def parse_variables(json_vars: str | None, pairs: list[str]) -> dict[str, Any]:
    """`--json-vars` first, then each `--var k=v` on top of it."""
    variables: dict[str, Any] = {}
    if json_vars:
        try:
            value = json.loads(json_vars, parse_constant=_reject_constant)
        except ValueError as exc:
            raise CommandError(f"--json-vars is not valid JSON: {exc}.") from exc
        if not isinstance(value, dict):
            raise CommandError("--json-vars must be a JSON object, like '{\"amount\": 250}'.")
        variables.update(value)
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--var {pair!r} is not of the form name=value.")
        variables[name.strip()] = parse_value(text)
    return variables


class Command(BaseCommand):
    help = (
        "Start an instance of the latest (or --version N) definition of process KEY and run it "
        "to its first wait state; prints the instance id, its status and its open tasks. "
        "Values of --var are read as JSON when they parse (amount=250 is a number, flag=true "
        "a boolean), otherwise as strings."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # `--version N` chooses a definition version; it replaces Django's `--version` (which
        # would print Django's version) instead of clashing with it.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", metavar="KEY", help="Process key (the BPMN process id).")
        parser.add_argument(
            "--var",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="A start variable; repeat for more. Overrides the same name in --json-vars.",
        )
        parser.add_argument("--json-vars", metavar="JSON", help="Start variables as a JSON object.")
        parser.add_argument("--business-key", metavar="BK", help="Business key of the instance.")
        parser.add_argument(
            "--version", type=int, metavar="N", help="Definition version (default: latest)."
        )
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USERNAME",
            help="Start as this user (recorded as the starter); default: the system.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        variables = parse_variables(options["json_vars"], options["var"])
        actor = user_named(options["as_user"]) if options["as_user"] else None
        try:
            started = start_instance(
                key=options["key"],
                variables=variables,
                business_key=options["business_key"],
                version=options["version"],
                actor=actor,
            )
            instance = instance_detail(started.pk)
        except EngineError as exc:
            raise CommandError(exc.explained()) from exc
        definition = instance.definition
        self.stdout.write(f"Instance {instance.pk}")
        self.stdout.write(f"  process:      {definition.key} v{definition.version}")
        self.stdout.write(f"  status:       {instance.status}")
        if instance.business_key:
            self.stdout.write(f"  business key: {instance.business_key}")
        if instance.incident:
            self.stdout.write(
                f"  incident:     {instance.incident.get('element_id')}: "
                f"{instance.incident.get('error')}"
            )
        open_tasks = [task for task in instance.human_tasks.all() if task.is_active]
        if not open_tasks:
            self.stdout.write("No open tasks.")
            return
        self.stdout.write("Open tasks:")
        for task in open_tasks:
            self.stdout.write(f"  {task.pk}  {_describe(task)}")


def _describe(task: HumanTask) -> str:
    who = []
    if task.assignee:
        who.append(f"assignee {task.assignee}")
    if task.candidate_users:
        who.append(f"users {','.join(task.candidate_users)}")
    if task.candidate_groups:
        who.append(f"groups {','.join(task.candidate_groups)}")
    label = f"{task.name or task.element_id} [{task.element_id}] {task.status}"
    return f"{label} ({'; '.join(who)})" if who else label
