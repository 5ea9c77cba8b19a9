"""Batches on real Celery workers: one over 5,000 instances is started over the API, its
progress shows while the workers go through the chunks, and every instance is changed once;
one whose workers are killed mid-chunk finishes all the same, still changing each once."""

import signal

import pytest
from django.db.models import Count
from rest_framework.test import APIClient

from engine.models import Batch, BatchItem, InstanceEvent, ProcessInstance
from processes.models import ProcessDefinition
from tests.engine.repair_diagrams import approval
from tests.engine.service_fixtures import Workers, wait_until
from tests.helpers import deploy_document

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

INSTANCES = 5_000


def test_a_batch_over_5000_instances_suspends_each_once(
    celery_workers: Workers, make_user, api_client_for
) -> None:
    client: APIClient = api_client_for(make_user("olga_operator", "operators"))
    deploy_document(approval())
    definition = ProcessDefinition.objects.get(key="two_step")
    ProcessInstance.objects.bulk_create(
        (ProcessInstance(definition=definition, status="waiting") for _ in range(INSTANCES)),
        batch_size=1000,
    )

    response = client.post(
        "/api/v1/batches/",
        {"operation": "suspend", "arguments": {"reason": "maintenance"}, "filter": {}},
        format="json",
    )
    assert response.status_code == 202, response.json()
    url = response["Location"]
    seen: list[int] = []

    def finished() -> bool:
        body = client.get(url).json()
        seen.append(body["done"])
        assert body["total"] == INSTANCES
        return body["status"] not in ("pending", "running")

    wait_until(finished, timeout=240, what="the batch to finish", poll=0.2)
    body = client.get(url).json()
    assert (body["status"], body["done"], body["succeeded"]) == (
        "completed",
        INSTANCES,
        INSTANCES,
    )
    assert any(0 < done < INSTANCES for done in seen)  # progress was visible on the way
    assert seen == sorted(seen)

    assert ProcessInstance.objects.filter(status="suspended").count() == INSTANCES
    per_instance = (
        InstanceEvent.objects.filter(payload__batch=body["id"])
        .values("instance_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    assert len(per_instance) == INSTANCES
    assert {row["n"] for row in per_instance} == {1}
    assert not BatchItem.objects.filter(batch_id=body["id"]).exclude(outcome="ok").exists()
    assert Batch.objects.get(pk=body["id"]).finished_at is not None


def test_a_batch_whose_workers_are_killed_mid_chunk_changes_each_instance_once(
    celery_workers: Workers, make_user, api_client_for
) -> None:
    client: APIClient = api_client_for(make_user("olga_operator", "operators"))
    deploy_document(approval())
    definition = ProcessDefinition.objects.get(key="two_step")
    count = 2_000
    ProcessInstance.objects.bulk_create(
        ProcessInstance(definition=definition, status="waiting") for _ in range(count)
    )
    response = client.post(
        "/api/v1/batches/", {"operation": "suspend", "filter": {}}, format="json"
    )
    batch_id = response.json()["id"]

    def under_way() -> bool:
        return ProcessInstance.objects.filter(status="suspended").count() > 100

    wait_until(under_way, timeout=120, what="the batch to get going")
    for child in celery_workers.pool_children():  # mid-chunk: their chunk locks go with them
        child.send_signal(signal.SIGKILL)

    def finished() -> bool:
        return Batch.objects.get(pk=batch_id).is_finished

    wait_until(finished, timeout=240, what="the batch to finish after the kill")
    batch = Batch.objects.get(pk=batch_id)
    assert (batch.status, batch.done, batch.failed) == ("completed", count, 0)
    assert ProcessInstance.objects.filter(status="suspended").count() == count
    per_instance = (
        InstanceEvent.objects.filter(payload__batch=batch_id)
        .values("instance_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    assert len(per_instance) == count
    assert {row["n"] for row in per_instance} == {1}
    # The killed chunks had changed instances they had not recorded yet: found, not redone.
    recovered = BatchItem.objects.filter(batch_id=batch_id, message__contains="worker stopped")
    assert recovered.exists()
