"""Batch operations over the API, their chunks run here in the test process (the run on real
workers: tests/engine/test_batches_on_workers.py): dry run, permissions, bad input, cancel
between chunks, a chunk run again after its worker died, migrate skipping instances without
counterpart, and each operation's outcome."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from engine.models import Batch, BatchItem, InstanceEvent, ProcessInstance
from engine.services import cancel_instance, start_instance, suspend_instance
from engine.services.audit import on_behalf_of_batch
from engine.services.batches import CHUNK_SIZE, run_batch_chunk, sweep_batches
from processes.models import ProcessDefinition
from tests.engine.repair_diagrams import approval, approve
from tests.engine.service_fixtures import jobs_for_no_worker
from tests.helpers import build_bpmn, deploy_document

URL = "/api/v1/batches/"


@pytest.fixture(autouse=True)
def _no_worker() -> Iterator[None]:
    """The chunks run in the test, not on a worker: their messages go to a queue nobody reads."""
    with jobs_for_no_worker():
        yield


@pytest.fixture
def operator(make_user) -> User:
    return make_user("olga_operator", "operators")


@pytest.fixture
def operator_api(operator, api_client_for) -> APIClient:
    return api_client_for(operator)


@pytest.fixture
def definition(db) -> ProcessDefinition:
    deploy_document(approval())
    return ProcessDefinition.objects.get(key="two_step", version=1)


def waiting_instances(definition: ProcessDefinition, count: int, **fields: Any) -> list[Any]:
    """`count` instances waiting somewhere, made in bulk (suspend and terminate-free
    operations do not read their workflow state)."""
    made = ProcessInstance.objects.bulk_create(
        ProcessInstance(definition=definition, status="waiting", **fields) for _ in range(count)
    )
    return [i.pk for i in made]


def run_to_end(batch_id: str) -> Batch:
    """Run chunks as the workers would until the batch stops."""
    for _ in range(10_000):
        batch = Batch.objects.get(pk=batch_id)
        if batch.is_finished:
            return batch
        run_batch_chunk(batch_id)
    raise AssertionError("the batch never finished")


def post(client: APIClient, body: dict[str, Any]) -> Any:
    return client.post(URL, body, format="json")


def test_a_suspend_batch_suspends_each_matching_instance_once(operator_api, definition):
    targets = waiting_instances(definition, 450, business_key="bulk")
    other = waiting_instances(definition, 3, business_key="other")
    response = post(
        operator_api,
        {
            "operation": "suspend",
            "arguments": {"reason": "supplier outage"},
            "filter": {"definition": "two_step", "business_key": "bulk"},
        },
    )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["status"], body["total"], body["done"]) == ("pending", 450, 0)
    assert response["Location"] == f"/api/v1/batches/{body['id']}/"

    run_batch_chunk(body["id"])
    progress = operator_api.get(f"{URL}{body['id']}/").json()
    assert (progress["status"], progress["done"], progress["total"]) == ("running", CHUNK_SIZE, 450)

    batch = run_to_end(body["id"])
    assert (batch.status, batch.done, batch.skipped, batch.failed) == ("completed", 450, 0, 0)
    assert set(ProcessInstance.objects.filter(pk__in=targets).values_list("status", flat=True)) == {
        "suspended"
    }
    assert set(ProcessInstance.objects.filter(pk__in=other).values_list("status", flat=True)) == {
        "waiting"
    }
    events = InstanceEvent.objects.filter(payload__batch=body["id"])
    assert events.count() == 450
    assert set(events.values_list("type", "actor__username", "payload__reason")) == {
        ("suspended", "olga_operator", "supplier outage")
    }
    detail = operator_api.get(f"{URL}{body['id']}/").json()
    assert (detail["succeeded"], detail["problems"], detail["finished_at"] is not None) == (
        450,
        [],
        True,
    )
    listed = operator_api.get(URL).json()
    assert [b["id"] for b in listed["results"]] == [body["id"]]


def test_the_dry_run_counts_and_samples_and_changes_nothing(operator_api, definition):
    waiting_instances(definition, 30)
    suspended = waiting_instances(definition, 5)
    ProcessInstance.objects.filter(pk__in=suspended).update(status="suspended")
    before = ProcessInstance.objects.filter(status="waiting").count()

    response = post(
        operator_api,
        {"operation": "suspend", "filter": {"definition": "two_step"}, "dry_run": True},
    )
    assert response.status_code == 200, response.json()
    preview = response.json()
    assert (preview["matched"], preview["targets"]) == (35, 30)
    assert preview["matched_by_status"] == {"waiting": 30, "suspended": 5}
    assert len(preview["sample"]) == 20
    assert set(preview["sample"]) <= {
        str(i)
        for i in ProcessInstance.objects.filter(status="waiting").values_list("pk", flat=True)
    }
    assert Batch.objects.count() == 0
    assert ProcessInstance.objects.filter(status="waiting").count() == before
    assert not InstanceEvent.objects.exists()


def test_cancel_stops_between_chunks(operator_api, definition):
    waiting_instances(definition, 3 * CHUNK_SIZE)
    batch_id = post(operator_api, {"operation": "suspend", "filter": {}}).json()["id"]
    run_batch_chunk(batch_id)

    response = operator_api.post(f"{URL}{batch_id}/cancel/")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "cancelled"
    run_batch_chunk(batch_id)  # the next chunk's message, already queued, does nothing

    batch = Batch.objects.get(pk=batch_id)
    assert (batch.status, batch.done, batch.total) == ("cancelled", CHUNK_SIZE, 3 * CHUNK_SIZE)
    assert ProcessInstance.objects.filter(status="suspended").count() == CHUNK_SIZE
    assert batch.items.filter(outcome="").count() == 2 * CHUNK_SIZE
    again = operator_api.post(f"{URL}{batch_id}/cancel/")
    assert again.status_code == 409
    assert again["Content-Type"] == "application/problem+json"


def test_a_chunk_run_again_after_its_worker_died_changes_no_instance_twice(
    operator_api, operator, definition
):
    waiting_instances(definition, 50)
    batch_id = post(operator_api, {"operation": "suspend", "filter": {}}).json()["id"]
    # A worker claimed the first chunk, suspended its first 10 instances, then died before
    # recording them (its chunk lock went with its connection).
    Batch.objects.filter(pk=batch_id).update(cursor=50)
    first = BatchItem.objects.filter(batch_id=batch_id).order_by("position")[:10]
    with on_behalf_of_batch(batch_id):
        for item in first:
            suspend_instance(instance_id=item.instance_id, actor=operator, reason="")
    ProcessInstance.objects.filter(pk=first[0].instance_id).update(status="waiting")  # resumed

    batch = run_to_end(batch_id)
    assert (batch.status, batch.done, batch.skipped, batch.failed) == ("completed", 50, 0, 0)
    per_instance = {
        row["instance_id"]
        for row in InstanceEvent.objects.filter(payload__batch=batch_id).values("instance_id")
    }
    assert len(per_instance) == 50
    assert InstanceEvent.objects.filter(payload__batch=batch_id).count() == 50
    recovered = BatchItem.objects.get(batch_id=batch_id, position=1)
    assert recovered.outcome == "ok"
    assert "before its worker stopped" in recovered.message
    # Changed once by the batch, then by someone else: the batch did not change it again.
    assert ProcessInstance.objects.get(pk=first[0].instance_id).status == "waiting"


def test_migrate_skips_and_reports_instances_without_counterpart(
    operator_api, definition, approver
):
    at_approve = start_instance(key="two_step")
    at_pay = start_instance(key="two_step")
    approve(at_pay, approver)
    deploy_document(approval(drop_pay=True))

    preview = post(
        operator_api,
        {
            "operation": "migrate",
            "arguments": {"version": 2},
            "filter": {"definition": "two_step"},
            "dry_run": True,
        },
    ).json()
    assert preview["targets"] == 2
    possible = {p["instance"]: p["possible"] for p in preview["migration_plans"]}
    assert possible == {str(at_approve.pk): True, str(at_pay.pk): False}

    response = post(
        operator_api,
        {"operation": "migrate", "arguments": {"version": 2}, "filter": {"definition": "two_step"}},
    )
    batch = run_to_end(response.json()["id"])
    assert (batch.status, batch.done, batch.skipped, batch.failed) == ("completed", 2, 1, 0)
    at_approve.refresh_from_db()
    at_pay.refresh_from_db()
    assert (at_approve.definition.version, at_pay.definition.version) == (2, 1)
    detail = operator_api.get(f"{URL}{batch.pk}/").json()
    assert detail["succeeded"] == 1
    [problem] = detail["problems"]
    assert (problem["instance"], problem["outcome"]) == (str(at_pay.pk), "skipped")
    assert "pay: no counterpart in version 2" in problem["message"]
    skipped = operator_api.get(f"{URL}{batch.pk}/items/?outcome=skipped").json()
    assert [i["instance"] for i in skipped["results"]] == [str(at_pay.pk)]
    assert InstanceEvent.objects.filter(payload__batch=str(batch.pk)).get().instance_id == (
        at_approve.pk
    )


def test_terminate_resume_set_variables_and_delete_finished(operator_api, definition):
    def run(body: dict[str, Any]) -> Batch:
        response = post(operator_api, body)
        assert response.status_code == 202, response.json()
        return run_to_end(response.json()["id"])

    instances = [start_instance(key="two_step", business_key=f"k{i}") for i in range(4)]
    suspend_batch = run({"operation": "suspend", "filter": {"business_key": "k0"}, "arguments": {}})
    assert suspend_batch.done == 1
    resumed = run({"operation": "resume", "filter": {"definition": "two_step"}})
    assert (resumed.total, resumed.done) == (1, 1)  # only the suspended one is a target

    changed = run(
        {
            "operation": "set_variables",
            "filter": {"waiting_at": "approve"},
            "arguments": {"variables": {"priority": "high"}},
        }
    )
    assert (changed.total, changed.skipped) == (4, 0)
    assert all(
        ProcessInstance.objects.get(pk=i.pk).variables["priority"] == "high" for i in instances
    )
    terminated = run(
        {
            "operation": "terminate",
            "filter": {"business_key": "k1"},
            "arguments": {"reason": "duplicate order"},
        }
    )
    assert terminated.done == 1
    assert ProcessInstance.objects.get(pk=instances[1].pk).status == "terminated"

    deleted = run({"operation": "delete_finished", "filter": {}})
    assert (deleted.total, deleted.done, deleted.skipped) == (1, 1, 0)
    assert not ProcessInstance.objects.filter(pk=instances[1].pk).exists()
    assert ProcessInstance.objects.count() == 3


def test_retry_batch_filters_by_incident_error(operator_api, definition):
    failing = waiting_instances(definition, 2)
    ProcessInstance.objects.filter(pk__in=failing).update(
        status="incident", incident={"kind": "job", "element_id": "x", "error": "HTTP 503 Busy"}
    )
    preview = post(
        operator_api,
        {"operation": "retry", "filter": {"incident_error": "503 busy"}, "dry_run": True},
    ).json()
    assert (preview["matched"], preview["targets"]) == (2, 2)
    none = post(
        operator_api,
        {"operation": "retry", "filter": {"incident_error": "timeout"}, "dry_run": True},
    ).json()
    assert none["matched"] == 0


def test_a_batch_that_matches_nothing_is_completed_at_once(operator_api, definition):
    response = post(operator_api, {"operation": "resume", "filter": {}})
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["total"]) == ("completed", 0)


@pytest.mark.parametrize(
    "body",
    [
        {"operation": "suspend", "filter": {"stauts": "waiting"}},
        {"operation": "suspend"},
        {"operation": "explode", "filter": {}},
        {"operation": "terminate", "filter": {}},
        {"operation": "terminate", "filter": {}, "arguments": {"reason": "  "}},
        {"operation": "migrate", "filter": {}, "arguments": {"version": 2}},
        {"operation": "migrate", "filter": {"definition": "two_step"}, "arguments": {}},
        {"operation": "resume", "filter": {}, "arguments": {"reason": "no"}},
        {"operation": "set_variables", "filter": {}},
        {"operation": "set_variables", "filter": {}, "arguments": {"variables": []}},
        {"operation": "suspend", "filter": {"started_after": "yesterday"}},
        {"operation": "suspend", "filter": {"status": "sleeping"}},
        {"operation": "suspend", "filter": [], "dry_run": True},
    ],
)
def test_bad_input_is_a_problem_and_changes_nothing(operator_api, definition, body):
    waiting_instances(definition, 2)
    response = post(operator_api, body)
    assert response.status_code == 400, response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert Batch.objects.count() == 0


@pytest.mark.parametrize("text", ["\u001e", " ", "two_step "])
def test_filter_text_is_taken_as_given(operator_api, definition, text):
    # A schema-valid string (one character or more) is a filter, not a blank to refuse; it
    # matches what it says, here nothing.
    waiting_instances(definition, 2)
    for field in ("definition", "business_key", "incident_error", "waiting_at"):
        body = {"operation": "suspend", "filter": {field: text}, "dry_run": True}
        response = post(operator_api, body)
        assert response.status_code == 200, (field, response.json())
        assert response.json()["matched"] == 0
    assert Batch.objects.count() == 0


def test_a_migration_to_a_version_that_does_not_exist_is_404(operator_api, definition):
    body = {"operation": "migrate", "filter": {"definition": "two_step"}}
    response = post(operator_api, {**body, "arguments": {"version": 9}})
    assert response.status_code == 404
    assert "has no version 9" in response.json()["detail"]


def test_non_operators_get_403(api_client_for, make_user, operator_api, definition):
    waiting_instances(definition, 2)
    batch_id = post(operator_api, {"operation": "suspend", "filter": {}}).json()["id"]
    client = api_client_for(make_user("dora", "designers"))
    for response in (
        post(client, {"operation": "suspend", "filter": {}}),
        post(client, {"operation": "suspend", "filter": {}, "dry_run": True}),
        client.get(URL),
        client.get(f"{URL}{batch_id}/"),
        client.get(f"{URL}{batch_id}/items/"),
        client.post(f"{URL}{batch_id}/cancel/"),
    ):
        assert response.status_code == 403
        assert response["Content-Type"] == "application/problem+json"
    assert api_client_for(None).get(URL).status_code == 401
    assert Batch.objects.count() == 1
    assert Batch.objects.get().status == "pending"


def test_a_batch_whose_actor_lost_the_operators_group_fails(operator_api, operator, definition):
    waiting_instances(definition, 5)
    batch_id = post(operator_api, {"operation": "suspend", "filter": {}}).json()["id"]
    operator.groups.clear()
    batch = run_to_end(batch_id)
    assert batch.status == "failed"
    assert "operators" in batch.error
    assert not ProcessInstance.objects.filter(status="suspended").exists()


def test_a_retry_batch_fixes_the_data_and_runs_the_failed_scripts_again(operator_api, db):
    deploy_document(build_bpmn("fails", script="total = amount * 2"))
    failing = [start_instance(key="fails") for _ in range(3)]
    healthy = start_instance(key="fails", variables={"amount": 1})
    assert {ProcessInstance.objects.get(pk=i.pk).status for i in failing} == {"incident"}

    response = post(
        operator_api,
        {
            "operation": "retry",
            "arguments": {"variables": {"amount": 21}},
            "filter": {"definition": "fails", "incident_error": "AMOUNT"},
        },
    )
    assert response.status_code == 202, response.json()
    batch = run_to_end(response.json()["id"])
    assert (batch.total, batch.done, batch.skipped, batch.failed) == (3, 3, 0, 0)
    for instance in failing:
        instance.refresh_from_db()
        assert (instance.status, instance.variables["total"]) == ("waiting", 42)
    assert (
        InstanceEvent.objects.filter(payload__batch=str(batch.pk), type="task_retried").count() == 3
    )
    assert not InstanceEvent.objects.filter(instance=healthy, payload__has_key="batch").exists()


def test_the_sweep_queues_batches_that_made_no_progress(operator_api, definition, settings):
    waiting_instances(definition, 3)
    stalled = post(operator_api, {"operation": "suspend", "filter": {}}).json()["id"]
    fresh = post(operator_api, {"operation": "resume", "filter": {}}).json()["id"]  # no targets
    settings.BATON_BATCH_STALLED_SECONDS = 60
    assert sweep_batches() == 0  # nothing stalled yet
    Batch.objects.filter(pk=stalled).update(updated_at=timezone.now() - timedelta(minutes=5))
    assert sweep_batches() == 1
    assert Batch.objects.get(pk=fresh).status == "completed"
    run_to_end(stalled)
    assert sweep_batches() == 0


def test_a_cancel_batch_cancels_with_compensation(operator, operator_api, definition):
    instances = [start_instance(key="two_step", business_key=f"c{i}") for i in range(3)]
    suspend_instance(instance_id=instances[2].pk, actor=operator)
    # One is being cancelled already (its compensation still runs): the batch skips it.
    ProcessInstance.objects.filter(pk=instances[1].pk).update(
        cancel_requested_at=timezone.now(), cancel_reason="earlier"
    )
    refused = post(operator_api, {"operation": "cancel", "filter": {"definition": "two_step"}})
    assert refused.status_code == 400
    blank = post(
        operator_api,
        {"operation": "cancel", "filter": {"definition": "two_step"}, "arguments": {"reason": " "}},
    )
    assert blank.status_code == 400
    body = {
        "operation": "cancel",
        "filter": {"definition": "two_step"},
        "arguments": {"reason": "order withdrawn"},
    }
    preview = post(operator_api, {**body, "dry_run": True}).json()
    # A suspended instance is no target: its compensation could not run.
    assert (preview["matched"], preview["targets"]) == (3, 2)
    assert preview["matched_by_status"] == {"waiting": 2, "suspended": 1}
    response = post(operator_api, body)
    assert response.status_code == 202, response.json()
    batch = run_to_end(response.json()["id"])
    assert (batch.total, batch.done, batch.skipped, batch.failed) == (2, 2, 1, 0)
    skipped = BatchItem.objects.get(batch=batch, outcome="skipped")
    assert skipped.instance_id == instances[1].pk and "already being cancelled" in skipped.message
    cancelled = ProcessInstance.objects.get(pk=instances[0].pk)
    assert cancelled.status == "terminated" and cancelled.cancel_reason == "order withdrawn"
    requested = InstanceEvent.objects.get(instance=cancelled, type="cancel_requested")
    assert requested.payload["batch"] == str(batch.pk) and requested.payload["handlers"] == 0
    assert requested.actor is not None and requested.actor.username == "olga_operator"
    assert InstanceEvent.objects.get(instance=cancelled, type="terminated").payload["batch"] == (
        str(batch.pk)
    )
    assert ProcessInstance.objects.get(pk=instances[2].pk).status == "suspended"


def test_a_cancel_batch_run_again_after_its_worker_died_cancels_each_instance_once(
    operator, operator_api, definition
):
    instances = [start_instance(key="two_step", business_key=f"d{i}") for i in range(3)]
    body = {"operation": "cancel", "filter": {"definition": "two_step"}}
    batch_id = post(operator_api, {**body, "arguments": {"reason": "withdrawn"}}).json()["id"]
    # A worker claimed the chunk, cancelled the first instance, then died before recording it.
    Batch.objects.filter(pk=batch_id).update(cursor=CHUNK_SIZE)
    first = BatchItem.objects.filter(batch_id=batch_id).order_by("position").first()
    assert first is not None
    with on_behalf_of_batch(batch_id):
        cancel_instance(instance_id=first.instance_id, actor=operator, reason="withdrawn")

    batch = run_to_end(batch_id)
    assert (batch.status, batch.done, batch.skipped, batch.failed) == ("completed", 3, 0, 0)
    for instance in instances:
        events = InstanceEvent.objects.filter(instance=instance, type="cancel_requested")
        assert events.count() == 1 and events.get().payload["batch"] == batch_id
        instance.refresh_from_db()
        assert instance.status == "terminated"
    recovered = BatchItem.objects.get(pk=first.pk)
    assert recovered.outcome == "ok" and "before its worker stopped" in recovered.message
