"""Fix-and-retry of a failed http task in the admin, in a real browser (issue 18): the
operator corrects the variable the request was built from, saves with "retry", and the call
goes out with the fixed value; the page says which parameters changed."""

import json

import pytest
from playwright.sync_api import expect

from engine.models import ProcessInstance
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.e2e.conftest import login
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import (
    FakeApi,
    Reply,
    Workers,
    celery_workers,
    fake_api,
    wait_until,
)

__all__ = ["celery_workers", "fake_api"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_fixing_the_data_and_retrying_completes_the_http_task(
    page, make_staff, with_password, celery_workers: Workers, fake_api: FakeApi
) -> None:
    fake_api.reply("/customers/unknown-42", Reply(404, {"detail": "no such customer"}))
    fake_api.reply("/customers/C-3", Reply(200, {"name": "Carla"}))
    xml = sequence("crm_lookup", [service_task("lookup", 'api + "/customers/" + customer_id')])
    deploy(name="crm", files=[UploadedFile("crm.bpmn", xml.encode())], actor=None)
    instance = start_instance(
        key="crm_lookup", variables={"api": fake_api.base_url, "customer_id": "unknown-42"}
    )

    def status() -> str:
        return ProcessInstance.objects.values_list("status", flat=True).get(pk=instance.pk)

    wait_until(lambda: status() == "incident", what="the incident")
    operator = with_password(make_staff("olga_operator", "operators"))

    login(page, operator)
    page.goto(f"/admin/engine/processinstance/{instance.pk}/change/")
    expect(page.get_by_test_id("incident")).to_contain_text("404")
    editor = page.locator("textarea[name=variables][aria-describedby]")
    variables = json.loads(editor.input_value())
    variables["customer_id"] = "C-3"
    editor.fill(json.dumps(variables, indent=2))
    page.locator("input[name=retry]").check()
    page.get_by_role("button", name="Save variables").click()

    expect(page.locator(".messagelist")).to_contain_text(
        "Call lookup (lookup) is called again with changed parameters: url."
    )
    wait_until(lambda: status() == "completed", what="the retried call to complete the instance")
    assert len(fake_api.requests_to("/customers/C-3")) == 1
    page.reload()
    expect(page.get_by_test_id("instance-status")).to_have_text("Completed")
    history = page.get_by_test_id("job-history")
    history.locator("summary").click()
    expect(history).to_contain_text("HTTP_404")
    expect(history).to_contain_text("changed parameters: url")
