"""The schedules API: timer start events listed for operators, paused (the beat starts
nothing), resumed, run now and given a new schedule without deploying, each audited."""

import datetime
from typing import Any

import pytest

from engine.models import ProcessInstance, ScheduleEvent, StartTrigger
from engine.services.timers import fire_due_timers
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine import event_diagrams

pytestmark = pytest.mark.django_db
LIST = "/api/v1/schedules/"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def deploy_timer(value: str) -> StartTrigger:
    xml = event_diagrams.timer_start(value)
    deploy(name="tick.bpmn", files=[UploadedFile("tick.bpmn", xml.encode())], actor=None)
    return StartTrigger.objects.filter(kind="timer").latest("pk")


def started() -> int:
    return ProcessInstance.objects.filter(definition__key="scheduled").count()


@pytest.fixture
def operator(make_user: Any) -> Any:
    return make_user("olga_operator", "operators")


@pytest.fixture
def ops(api_client_for: Any, operator: Any) -> Any:
    client = api_client_for(operator)
    client.default_format = "json"
    return client


def test_a_paused_schedule_starts_nothing_until_resumed(
    ops: Any, operator: Any, clock: Any
) -> None:
    trigger = deploy_timer("R/PT1H")
    [row] = ops.get(LIST).json()["results"]
    assert (row["id"], row["expression"], row["paused"], row["current"]) == (
        trigger.pk,
        "R/PT1H",
        False,
        True,
    )
    assert ops.post(f"{LIST}{trigger.pk}/pause/").json()["paused"] is True
    clock.advance(datetime.timedelta(hours=3))
    assert fire_due_timers() == 0 and started() == 0
    resumed = ops.post(f"{LIST}{trigger.pk}/resume/").json()
    assert resumed["paused"] is False
    # What was missed while paused is not made up: the next start is ahead.
    assert datetime.datetime.fromisoformat(resumed["next_due_at"]) > clock.now()
    assert fire_due_timers() == 0
    clock.advance(datetime.timedelta(hours=1))
    assert fire_due_timers() == 1 and started() == 1
    types = list(ScheduleEvent.objects.filter(trigger=trigger).values_list("type", "actor"))
    assert types == [("paused", operator.pk), ("resumed", operator.pk)]


def test_run_now_starts_an_instance_audited(ops: Any, operator: Any) -> None:
    trigger = deploy_timer("R/P1D")
    ops.post(f"{LIST}{trigger.pk}/pause/")
    response = ops.post(f"{LIST}{trigger.pk}/run/")
    assert response.status_code == 201, response.content
    instance = ProcessInstance.objects.get(pk=response.json()["id"])
    assert instance.started_by == operator
    assert instance.events.get(type="started").payload["run_now"] is True
    assert ScheduleEvent.objects.get(type="run_now").payload["instance"] == str(instance.pk)


def test_change_the_schedule_without_deploying(ops: Any, operator: Any, clock: Any) -> None:
    trigger = deploy_timer("R/P1D")
    changed = ops.patch(f"{LIST}{trigger.pk}/", {"expression": "R2/PT10M"})
    assert changed.status_code == 200, changed.content
    assert changed.json()["expression"] == "R2/PT10M"
    clock.advance(datetime.timedelta(minutes=11))
    assert fire_due_timers() == 1
    event = ScheduleEvent.objects.get(type="changed")
    assert (event.actor, event.payload["before"], event.payload["after"]) == (
        operator,
        "R/P1D",
        "R2/PT10M",
    )
    for bad in ("every tuesday", "", "R/PT1H" * 60):
        problem(ops.patch(f"{LIST}{trigger.pk}/", {"expression": bad}), 400)
    problem(ops.patch(f"{LIST}{trigger.pk}/", {"expression": 5}), 400)
    trigger.refresh_from_db()
    assert trigger.timer_expression == "R2/PT10M"


def test_older_versions_are_shown_but_cannot_be_run_or_changed(ops: Any) -> None:
    old = deploy_timer("R/P1D")
    new = deploy_timer("R/P2D")
    assert old.pk != new.pk
    rows = {row["id"]: row for row in ops.get(LIST).json()["results"]}
    assert rows[old.pk]["current"] is False and rows[new.pk]["current"] is True
    assert [r["id"] for r in ops.get(LIST, {"current": "true"}).json()["results"]] == [new.pk]
    problem(ops.post(f"{LIST}{old.pk}/run/"), 409)
    problem(ops.patch(f"{LIST}{old.pk}/", {"expression": "R/PT1H"}), 409)


def test_only_operators_see_and_change_schedules(api_client_for: Any, make_user: Any) -> None:
    trigger = deploy_timer("R/P1D")
    designer = api_client_for(make_user("dora", "designers"))
    problem(designer.get(LIST), 403)
    problem(designer.post(f"{LIST}{trigger.pk}/pause/"), 403)
    problem(designer.post(f"{LIST}{trigger.pk}/run/"), 403)
    problem(designer.patch(f"{LIST}{trigger.pk}/", {"expression": "R/PT1H"}, format="json"), 403)
    problem(api_client_for(None).get(LIST), 401)
    problem(api_client_for(make_user("o2", "operators")).post(f"{LIST}999999/pause/"), 404)
    trigger.refresh_from_db()
    assert not trigger.paused and started() == 0
