"""An operator's retry of a failed service task evaluates its parameters again from the
current variables (issue 18): the fixed data is what the retried call sends, the job keeps
the history of its earlier attempts, and secrets stay references everywhere."""

import json

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from engine.models import InstanceEvent, ProcessInstance, ServiceJob
from engine.services import retry_instance, start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import TEST_SECRET, FakeApi, Reply, Workers, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LOOKUP = service_task(
    "lookup",
    'api + "/customers/" + customer_id',
    headers={"Authorization": "Bearer secret:CRM_TOKEN"},
)


def finished(instance: ProcessInstance) -> bool:
    instance.refresh_from_db()
    return instance.status in ("completed", "incident", "terminated")


def operator(name: str = "olga") -> User:
    user = User.objects.create_user(name)
    user.groups.create(name="operators")
    return user


def start_failing_lookup(key: str, fake_api: FakeApi) -> ProcessInstance:
    fake_api.reply("/customers/unknown-42", Reply(404, {"detail": "no such customer"}))
    fake_api.reply("/customers/C-3", Reply(200, {"name": "Carla"}))
    deploy(
        name=key, files=[UploadedFile(f"{key}.bpmn", sequence(key, [LOOKUP]).encode())], actor=None
    )
    instance = start_instance(
        key=key, variables={"api": fake_api.base_url, "customer_id": "unknown-42"}
    )
    wait_until(lambda: finished(instance), what="the incident")
    assert instance.status == "incident"
    return instance


def test_retry_after_fixing_a_variable_calls_with_the_fixed_value(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    instance = start_failing_lookup("retry_fix", fake_api)
    job = ServiceJob.objects.get(instance=instance)
    assert job.error_code == "HTTP_404"

    retry_instance(instance_id=str(instance.id), actor=operator(), variables={"customer_id": "C-3"})
    wait_until(lambda: finished(instance), what="the retried instance to finish")

    assert instance.status == "completed"
    assert len(fake_api.requests_to("/customers/C-3")) == 1
    assert len(fake_api.requests_to("/customers/unknown-42")) == 1
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert job.parameters["url"].endswith("/customers/C-3")
    # The earlier attempt stays on the job row: what it sent and how it failed.
    [earlier] = job.history
    assert earlier["parameters"]["url"].endswith("/customers/unknown-42")
    assert earlier["error_code"] == "HTTP_404"
    assert earlier["attempts"] == 1
    assert earlier["changed"] == ["url"]
    assert earlier["retried_by"] == "olga"
    retried = InstanceEvent.objects.get(instance=instance, type="job_retried")
    assert retried.payload["changed_parameters"] == ["url"]
    # A changed request is a new request: it is not sent under the old idempotency key.
    keys = {
        r.headers["Idempotency-Key"]
        for r in fake_api.requests_to("/customers/unknown-42")
        + fake_api.requests_to("/customers/C-3")
    }
    assert len(keys) == 2
    # The secret reached the API but is stored nowhere, not even in the history.
    assert fake_api.requests_to("/customers/C-3")[0].headers["Authorization"] == (
        f"Bearer {TEST_SECRET}"
    )
    assert earlier["parameters"]["headers"]["Authorization"] == "Bearer secret:CRM_TOKEN"
    stored = json.dumps([job.parameters, job.history, retried.payload])
    assert TEST_SECRET not in stored


def test_the_api_retry_reevaluates_too(celery_workers: Workers, fake_api: FakeApi) -> None:
    instance = start_failing_lookup("retry_api", fake_api)
    client = APIClient()
    client.force_authenticate(operator("otto"))

    response = client.post(
        f"/api/v1/instances/{instance.id}/retry/",
        {"variables": {"customer_id": "C-3"}},
        format="json",
    )

    assert response.status_code == 200, response.content
    [job] = response.json()["jobs"]
    [earlier] = job["retries"]
    assert (earlier["error_code"], earlier["changed"], earlier["retried_by"]) == (
        "HTTP_404",
        ["url"],
        "otto",
    )
    assert "parameters" not in earlier
    wait_until(lambda: finished(instance), what="the retried instance to finish")
    assert instance.status == "completed"
    assert len(fake_api.requests_to("/customers/C-3")) == 1


def test_retry_without_a_change_keeps_the_request_and_its_key(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    instance = start_failing_lookup("retry_same", fake_api)
    fake_api.reply("/customers/unknown-42", Reply(200, {"name": "Late"}))

    retry_instance(instance_id=str(instance.id), actor=operator())
    wait_until(lambda: finished(instance), what="the retried instance to finish")

    assert instance.status == "completed"
    sent = fake_api.requests_to("/customers/unknown-42")
    assert len(sent) == 2
    assert sent[0].headers["Idempotency-Key"] == sent[1].headers["Idempotency-Key"]
    job = ServiceJob.objects.get(instance=instance)
    assert job.history[0]["changed"] == []


# SpiffArena's parameters are Python expressions, which may call instance_id().
SPIFF_LOOKUP = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="x">
  <bpmn:process id="retry_inside" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:serviceTask id="lookup" name="Look up">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="http/GetRequest" resultVariable="response">
          <spiffworkflow:parameters>
            <spiffworkflow:parameter id="url" type="str"
                value="api + '/customers/unknown-42?instance=' + instance_id()" />
          </spiffworkflow:parameters>
        </spiffworkflow:serviceTaskOperator>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="lookup" />
    <bpmn:sequenceFlow id="f2" sourceRef="lookup" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_retry_reevaluates_inside_the_instance(celery_workers: Workers, fake_api: FakeApi) -> None:
    """The parameters are evaluated again as the instance's own code: instance_id() is the
    instance's id (finding 2.3: it was None outside `running_as`)."""
    fake_api.reply("/customers/unknown-42", Reply(404, {"detail": "no such customer"}))
    deploy(
        name="retry_inside",
        files=[UploadedFile("retry_inside.bpmn", SPIFF_LOOKUP.encode())],
        actor=None,
    )
    instance = start_instance(key="retry_inside", variables={"api": fake_api.base_url})
    wait_until(lambda: finished(instance), what="the incident")
    assert instance.status == "incident"
    fake_api.reply("/customers/unknown-42", Reply(200, {"name": "Ursula"}))

    retry_instance(instance_id=str(instance.id), actor=operator())
    wait_until(lambda: finished(instance), what="the retried instance to finish")

    assert instance.status == "completed"
    job = ServiceJob.objects.get(instance=instance)
    assert job.parameters["url"].endswith(f"/customers/unknown-42?instance={instance.id}")
    assert job.history[-1]["changed"] == []
