"""Housekeeping (engine.services.retention): finished batches with their items and sent
webhook deliveries go after their retention periods, in chunks; everything younger, still
running or still pending stays."""

import datetime
import uuid

import pytest
from django.core.management import call_command
from django.utils import timezone

from engine.models import Batch, BatchItem, WebhookDelivery, WebhookSubscription
from engine.services import retention
from engine.services.retention import delete_expired_records

DAY = datetime.timedelta(days=1)
BatchStatus = Batch.Status
DeliveryStatus = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Several chunks from a handful of rows: the loops run more than once.
    monkeypatch.setattr(retention, "CHUNK", 2)
    monkeypatch.setattr(retention, "BATCH_CHUNK", 1)


def _batch(status: str, finished_days_ago: float | None, items: int = 3) -> Batch:
    now = timezone.now()
    finished = None if finished_days_ago is None else now - finished_days_ago * DAY
    batch = Batch.objects.create(
        operation=Batch.Operation.SUSPEND, status=status, total=items, finished_at=finished
    )
    BatchItem.objects.bulk_create(
        BatchItem(batch=batch, position=n, instance_id=uuid.uuid4()) for n in range(1, items + 1)
    )
    return batch


def _delivery(subscription: WebhookSubscription, status: str, days_ago: float) -> str:
    delivery = WebhookDelivery.objects.create(
        subscription=subscription, event_type="completed", payload={}, status=status
    )
    # created_at is auto_now_add: age the row afterwards.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        created_at=timezone.now() - days_ago * DAY
    )
    return str(delivery.pk)


@pytest.fixture
def subscription(db: None) -> WebhookSubscription:
    return WebhookSubscription.objects.create(
        name="receiver",
        url="http://127.0.0.1:9/hook",
        secret_name="CRM_TOKEN",
        event_types=["completed"],
    )


@pytest.mark.django_db
def test_finished_batches_older_than_the_retention_go_with_their_items(settings):
    settings.BATON_BATCH_RETENTION_DAYS = 30
    old = [
        _batch(BatchStatus.COMPLETED, 45),
        _batch(BatchStatus.CANCELLED, 31),
        _batch(BatchStatus.FAILED, 400, items=5),
    ]
    kept = [
        _batch(BatchStatus.COMPLETED, 29),  # finished, but young
        _batch(BatchStatus.RUNNING, None),  # never finished
        _batch(BatchStatus.PENDING, None),
    ]
    # A batch that is still running keeps its rows even with an old finished_at.
    kept.append(_batch(BatchStatus.RUNNING, 90))

    done = delete_expired_records()

    assert (done.batches, done.batch_items) == (3, 11)
    assert set(Batch.objects.values_list("pk", flat=True)) == {b.pk for b in kept}
    assert not BatchItem.objects.filter(batch_id__in=[b.pk for b in old]).exists()
    assert BatchItem.objects.count() == 3 * len(kept)


@pytest.mark.django_db
def test_sent_webhook_deliveries_older_than_the_retention_go(settings, subscription):
    settings.BATON_WEBHOOK_DELIVERY_RETENTION_DAYS = 7
    old = [
        _delivery(subscription, DeliveryStatus.DELIVERED, 8),
        _delivery(subscription, DeliveryStatus.DELIVERED, 100),
        _delivery(subscription, DeliveryStatus.FAILED, 10),
    ]
    kept = [
        _delivery(subscription, DeliveryStatus.DELIVERED, 6),
        _delivery(subscription, DeliveryStatus.FAILED, 1),
        _delivery(subscription, DeliveryStatus.PENDING, 50),  # still on its way
    ]

    done = delete_expired_records()

    assert done.webhook_deliveries == len(old)
    assert set(map(str, WebhookDelivery.objects.values_list("pk", flat=True))) == set(kept)
    assert WebhookSubscription.objects.filter(pk=subscription.pk).exists()


@pytest.mark.django_db
def test_a_retention_of_zero_days_keeps_everything(settings, subscription):
    settings.BATON_BATCH_RETENTION_DAYS = 0
    settings.BATON_WEBHOOK_DELIVERY_RETENTION_DAYS = 0
    _batch(BatchStatus.COMPLETED, 1000)
    _delivery(subscription, DeliveryStatus.DELIVERED, 1000)

    done = delete_expired_records()

    assert (done.batches, done.batch_items, done.webhook_deliveries) == (0, 0, 0)
    assert (Batch.objects.count(), WebhookDelivery.objects.count()) == (1, 1)


@pytest.mark.django_db
def test_the_retention_command_reports_what_it_deleted(settings, subscription, capsys):
    settings.BATON_BATCH_RETENTION_DAYS = 30
    settings.BATON_WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    _batch(BatchStatus.COMPLETED, 60, items=2)
    _batch(BatchStatus.COMPLETED, 2)
    _delivery(subscription, DeliveryStatus.FAILED, 31)

    call_command("retention")

    out = capsys.readouterr().out
    assert "Deleted 1 batches (2 items; retention 30 days) and 1 webhook deliveries" in out
    assert Batch.objects.count() == 1
    assert WebhookDelivery.objects.count() == 0


def test_the_beat_runs_the_housekeeping_on_the_events_queue(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["delete-expired-records"]
    assert entry["task"] == "baton.delete_expired_records"
    route = settings.CELERY_TASK_ROUTES["baton.delete_expired_records"]
    assert route["queue"] == settings.BATON_EVENTS_QUEUE
