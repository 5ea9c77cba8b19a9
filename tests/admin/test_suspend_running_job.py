"""Suspending an instance while its service job is on a real worker: the result that comes
back meanwhile is kept, and applied when an operator resumes it in the admin."""

import pytest
from django.test import Client
from django.urls import reverse

from engine.models import ProcessInstance, ServiceJob
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import FakeApi, Reply, Workers, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_result_arriving_while_suspended_is_applied_on_resume(
    celery_workers: Workers, fake_api: FakeApi, make_staff
) -> None:
    operator = make_staff("olga_operator", "operators")
    client = Client()
    client.force_login(operator)
    fake_api.reply("/slow", Reply(body={"score": 7}, delay=1.5))
    xml = sequence(
        "svc_slow",
        [service_task("call", 'api + "/slow"', outputs={"score": 'result["body"]["score"]'})],
    )
    deploy(name="slow", files=[UploadedFile("slow.bpmn", xml.encode())], actor=None)
    instance = start_instance(key="svc_slow", variables={"api": fake_api.base_url})
    job = ServiceJob.objects.get(instance=instance)
    wait_until(lambda: bool(fake_api.requests_to("/slow")), what="the worker to call the API")

    url = reverse("admin:engine_processinstance_repair", args=[instance.pk, "suspend"])
    client.post(url, {"reason": "look first"})
    instance.refresh_from_db()
    assert instance.status == "suspended"

    def result_kept() -> bool:
        job.refresh_from_db()
        return isinstance(job.result, dict) and "deferred_outcome" in job.result

    wait_until(result_kept, what="the job result to be kept")
    instance.refresh_from_db()
    assert (instance.status, job.status) == ("suspended", ServiceJob.Status.RUNNING)
    assert "score" not in instance.variables

    client.post(reverse("admin:engine_processinstance_repair", args=[instance.pk, "resume"]))
    instance.refresh_from_db()
    job.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert (instance.variables["score"], job.status) == (7, ServiceJob.Status.SUCCEEDED)
    assert len(fake_api.requests_to("/slow")) == 1  # applied, not called again
