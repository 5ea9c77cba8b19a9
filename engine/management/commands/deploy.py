"""`manage.py deploy FILE [FILE ...]`: deploy BPMN/DMN/JSON files as one deployment."""

from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser

from processes.services import deploy
from processes.validation import DeploymentInvalid, Problem, UploadedFile


def user_named(username: str) -> User:
    """The user to act as (`--as`, `--user`); a CommandError when there is none."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"There is no user {username!r}.")
    return user


def format_problem(problem: Problem) -> str:
    """`file:line: element_id (name): message`, leaving out the parts the problem does not
    have."""
    location = problem.file or "<upload>"
    if problem.line:
        location += f":{problem.line}"
    if problem.element_id:
        name = problem.element_name
        element = f"{problem.element_id} ({name})" if name and name != problem.element_id else ""
        return f"{location}: {element or problem.element_id}: {problem.message}"
    return f"{location}: {problem.message}"


def read_upload(path_text: str) -> UploadedFile:
    path = Path(path_text)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise CommandError(f"{path_text} {what}.")
    try:
        return UploadedFile(name=path.name, content=path.read_bytes())
    except OSError as exc:
        raise CommandError(f"Cannot read {path_text}: {exc.strerror or exc}.") from exc


class Command(BaseCommand):
    help = (
        "Validate and deploy BPMN, DMN and JSON form files as one deployment; prints each "
        "process definition as `key vN (new|unchanged)`. Without --as the shell deploys as the "
        "system; with --as USERNAME that user must be a member of `designers`."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help="Files to deploy together.")
        parser.add_argument(
            "--name", default="", help="Deployment name (default: the first process's name)."
        )
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USERNAME",
            help="Deploy as this user (checked: only members of `designers` may deploy).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = user_named(options["as_user"]) if options["as_user"] else None
        uploads = [read_upload(path) for path in options["files"]]
        try:
            result = deploy(name=options["name"], files=uploads, actor=actor)
        except PermissionDenied as exc:
            raise CommandError(str(exc) or "Permission denied.") from exc
        except DeploymentInvalid as exc:
            for problem in exc.problems:
                self.stderr.write(format_problem(problem))
            count = len(exc.problems)
            raise CommandError(
                f"Nothing was deployed: {count} problem{'s' if count != 1 else ''}."
            ) from exc
        created = {definition.pk for definition in result.created}
        for definition in result.definitions:
            state = "new" if definition.pk in created else "unchanged"
            self.stdout.write(f"{definition.key} v{definition.version} ({state})")
