"""SpiffArena's script helpers (engine.bpmn.sandbox.spiff_helpers): what they answer in a
script task. Their escapes are in tests/engine/sandbox_escapes.py (SPIFF_HELPERS)."""

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from engine.models import HumanTask
from engine.services import complete_human_task, start_instance
from tests.engine.service_diagrams import sequence
from tests.engine.test_sandbox_escapes import script_task
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db


def run(script: str, *, actor: User | None = None) -> dict[str, object]:
    deploy_document(sequence("helpers", [script_task(script)]))
    instance = start_instance(key="helpers", actor=actor)
    assert instance.status == "completed", instance.incident
    return dict(instance.variables)


def test_initiator_toplevel_info_and_frontend_url() -> None:
    ann = User.objects.create_user("ann", email="ann@example.org")
    found = run(
        "who = get_process_initiator_user()['username']\n"
        "info = get_toplevel_process_info()\n"
        "url = get_frontend_url()",
        actor=ann,
    )
    assert found["who"] == "ann"
    info = found["info"]
    assert isinstance(info, dict) and info["process_model_identifier"] == "helpers"
    assert info["process_instance_id"]
    assert isinstance(found["url"], str) and found["url"].startswith("http")


@override_settings(BATON_ENVIRONMENT_NAME="staging")
def test_get_env_is_the_setting_never_the_process_environment() -> None:
    assert run("env = get_env()")["env"] == "staging"


def test_the_last_user_completing_a_task() -> None:
    bob = User.objects.create_user("bob")
    bob.is_superuser = True
    bob.save()
    script = (
        "who = get_last_user_completing_task('helpers', 'approve')['username']\n"
        "nobody = get_last_user_completing_task('helpers', 'work')"
    )
    deploy_document(
        sequence(
            "helpers",
            ['    <bpmn:userTask id="approve" />\n', script_task(script)],
        )
    )
    instance = start_instance(key="helpers")
    task = HumanTask.objects.get(instance=instance, element_id="approve")
    complete_human_task(task_id=task.pk, user=bob)
    instance.refresh_from_db()
    assert instance.status == "completed", instance.incident
    assert (instance.variables["who"], instance.variables["nobody"]) == ("bob", None)


def test_zoneinfo_parse_date_and_locals() -> None:
    found = run(
        "berlin = ZoneInfo('Europe/Berlin')\n"
        "summer = datetime(2024, 7, 1, 12, tzinfo=berlin).isoformat()\n"
        "winter = datetime(2024, 1, 1, 12, tzinfo=berlin).utcoffset().total_seconds()\n"
        "iso = parse_date('2024-03-05T10:30:00+01:00')\n"
        "us = parse_date('03/05/2024')\n"
        "words = parse_date('March 5, 2024')\n"
        "nothing = parse_date('no date here')\n"
        "del berlin\n"
        "names = sorted(locals())"
    )
    assert found["summer"] == "2024-07-01T12:00:00+02:00"
    assert found["winter"] == 3600.0
    # The variables' JSON snapshot shows datetimes as text.
    assert found["iso"] == "2024-03-05 10:30:00+01:00"
    assert found["us"] == found["words"] == "2024-03-05 00:00:00"
    assert found["nothing"] is None
    assert found["names"] == ["iso", "nothing", "summer", "us", "winter", "words"]
