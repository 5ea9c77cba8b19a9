"""A batch over 5,000 instances on real Celery workers: it is started over the API, its
progress shows while the workers go through the chunks, and every instance is changed once."""

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
