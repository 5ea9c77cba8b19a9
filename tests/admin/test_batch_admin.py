"""Batches from the admin: "Apply to all N matching" on the instance list carries the list's
filters to a page that counts first (the dry run) and only then starts the batch; the batch's
page shows progress and its skipped instances; non-operators see none of it."""

from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import reverse

from engine.models import Batch, ProcessInstance
from engine.services.batches import run_batch_chunk
from processes.models import ProcessDefinition
from tests.engine.repair_diagrams import approval
from tests.engine.service_fixtures import jobs_for_no_worker
from tests.helpers import deploy_document

NEW_BATCH = "admin:engine_processinstance_batch"


@pytest.fixture(autouse=True)
def _no_worker() -> Iterator[None]:
    with jobs_for_no_worker():
        yield


@pytest.fixture
def operator_client(make_staff) -> Client:
    client = Client()
    client.force_login(make_staff("olga_operator", "operators"))
    return client


@pytest.fixture
def instances(db) -> list[ProcessInstance]:
    deploy_document(approval())
    definition = ProcessDefinition.objects.get(key="two_step")
    made = ProcessInstance.objects.bulk_create(
        ProcessInstance(definition=definition, status=status)
        for status in ["waiting"] * 7 + ["suspended"] * 2 + ["completed"]
    )
    return list(made)


def test_apply_to_all_matching_counts_first_then_starts_the_batch(operator_client, instances):
    listing = operator_client.get(
        reverse("admin:engine_processinstance_changelist") + "?status=waiting"
    )
    assert "Apply to all 7 matching" in listing.content.decode()

    url = reverse(NEW_BATCH) + "?status=waiting&definition__key=two_step&q=abc"
    page = operator_client.get(url)
    text = page.content.decode()
    assert page.status_code == 200
    assert 'value="two_step"' in text
    assert "Not carried over from the list: q." in text
    assert 'name="start"' not in text

    form = {"operation": "suspend", "status": "waiting", "definition": "two_step", "reason": "x"}
    counted = operator_client.post(url, {**form, "preview": "1"})
    text = counted.content.decode()
    assert "<strong>7</strong> instance(s) would be changed, of 7 matching" in text
    assert 'name="start"' in text
    assert not Batch.objects.exists()

    started = operator_client.post(url, {**form, "start": "1"})
    batch = Batch.objects.get()
    assert started.status_code == 302
    assert started["Location"] == reverse("admin:engine_batch_change", args=[batch.pk])
    assert (batch.operation, batch.total, batch.filter) == (
        "suspend",
        7,
        {"status": "waiting", "definition": "two_step"},
    )
    run_batch_chunk(str(batch.pk))
    run_batch_chunk(str(batch.pk))
    page = operator_client.get(started["Location"]).content.decode()
    assert "7 of 7" in page
    assert ProcessInstance.objects.filter(status="suspended").count() == 9


def test_a_refused_batch_says_why_and_starts_nothing(operator_client, instances):
    url = reverse(NEW_BATCH)
    response = operator_client.post(url, {"operation": "terminate", "start": "1"})
    assert response.status_code == 200
    assert "Give a reason to terminate" in response.content.decode()
    assert not Batch.objects.exists()


def test_the_batch_page_lists_skipped_instances(operator_client, instances, make_staff):
    url = reverse(NEW_BATCH)
    operator_client.post(url, {"operation": "resume", "start": "1"})
    batch = Batch.objects.get()
    ProcessInstance.objects.filter(status="suspended").update(status="waiting")  # raced
    run_batch_chunk(str(batch.pk))
    page = operator_client.get(reverse("admin:engine_batch_change", args=[batch.pk]))
    text = page.content.decode()
    assert 'data-testid="batch-problems"' in text
    assert text.count("not suspended") == 2

    listing = operator_client.get(reverse("admin:engine_batch_changelist")).content.decode()
    assert "2 of 2" in listing

    designer = Client()
    designer.force_login(make_staff("dora", "designers"))
    assert designer.get(url).status_code == 403
    assert designer.get(reverse("admin:engine_batch_changelist")).status_code == 403
    assert designer.post(url, {"operation": "resume", "start": "1"}).status_code == 403
    assert Batch.objects.count() == 1


def test_cancel_from_the_batch_list(operator_client, instances):
    operator_client.post(reverse(NEW_BATCH), {"operation": "suspend", "start": "1"})
    batch = Batch.objects.get()
    operator_client.post(
        reverse("admin:engine_batch_changelist"),
        {"action": "cancel_selected", "_selected_action": [str(batch.pk)]},
    )
    batch.refresh_from_db()
    assert batch.status == "cancelled"
    run_batch_chunk(str(batch.pk))
    assert (
        not ProcessInstance.objects.filter(status="suspended")
        .exclude(pk__in=[i.pk for i in instances if i.status == "suspended"])
        .exists()
    )


def test_the_lists_date_filter_becomes_the_batch_filter(operator_client, instances):
    url = reverse(NEW_BATCH) + "?created_at__gte=2020-01-01&created_at__lt=2099-01-01"
    form = {"operation": "suspend", "started_after": "2020-01-01", "started_before": "2099-01-01"}
    page = operator_client.get(url).content.decode()
    assert 'value="2020-01-01"' in page and 'value="2099-01-01"' in page
    counted = operator_client.post(url, {**form, "preview": "1"}).content.decode()
    assert "<strong>7</strong> instance(s) would be changed, of 10 matching" in counted
    none = operator_client.post(url, {**form, "started_after": "2098-01-01", "preview": "1"})
    assert "<strong>0</strong> instance(s) would be changed, of 0 matching" in none.content.decode()


def test_a_running_batchs_page_refreshes_itself_until_it_ends(operator_client, instances):
    operator_client.post(reverse(NEW_BATCH), {"operation": "suspend", "start": "1"})
    batch = Batch.objects.get()
    url = reverse("admin:engine_batch_change", args=[batch.pk])
    assert '<meta http-equiv="refresh" content="5">' in operator_client.get(url).content.decode()
    run_batch_chunk(str(batch.pk))
    batch.refresh_from_db()
    assert batch.status == "completed"
    assert 'http-equiv="refresh"' not in operator_client.get(url).content.decode()
