"""Outbound webhooks end to end: real Celery workers post signed instance events to a receiver
on 127.0.0.1, retry when it answers 500, and keep a delivery log; the API shows it."""

import hashlib
import hmac
import json

import pytest
from django.contrib.auth.models import User

from engine.connectors.webhook_signatures import verify_timestamped
from engine.models import WebhookDelivery, WebhookSubscription
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import TEST_SECRET, FakeApi, Reply, Workers, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def deploy_xml(key: str, xml: str) -> None:
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)


def subscribe(url: str, *types: str, process_key: str = "") -> WebhookSubscription:
    # CRM_TOKEN is declared in the workers' secret store (service_fixtures).
    return WebhookSubscription.objects.create(
        name="receiver",
        url=url,
        secret_name="CRM_TOKEN",
        event_types=list(types),
        process_key=process_key,
    )


def test_a_completed_instance_is_posted_signed_and_retried_after_a_500(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    fake_api.reply("/hook", Reply(500), Reply(200))
    subscription = subscribe(fake_api.base_url + "/hook", "completed", process_key="hooked")
    subscribe(fake_api.base_url + "/other", "completed", process_key="another_process")
    deploy_xml("hooked", sequence("hooked", [service_task("call", 'api + "/work"')]))
    instance = start_instance(key="hooked", variables={"api": fake_api.base_url})

    def delivered() -> bool:
        return WebhookDelivery.objects.filter(
            subscription=subscription, status="delivered"
        ).exists()

    wait_until(delivered, what="the webhook to be delivered")
    delivery = WebhookDelivery.objects.get(subscription=subscription)
    assert (delivery.attempts, delivery.last_response_code) == (2, 200)
    assert delivery.instance_id == instance.pk
    first, second = fake_api.requests_to("/hook")
    assert first.body == second.body
    assert first.headers["Webhook-Id"] == second.headers["Webhook-Id"] == str(delivery.id)
    # The receiver checks both signatures with the shared secret.
    expected = hmac.new(TEST_SECRET.encode(), second.body, hashlib.sha256).hexdigest()
    assert second.headers["X-Hub-Signature-256"] == f"sha256={expected}"
    verify_timestamped(TEST_SECRET, second.body, second.headers["Webhook-Signature"], 300)
    event = json.loads(second.body)
    assert event["type"] == "baton.instance.completed"
    assert event["instance"] == {
        "id": str(instance.pk),
        "process": "hooked",
        "business_key": None,
        "status": "completed",
    }
    assert not fake_api.requests_to("/other")  # another process's subscription
    assert not WebhookDelivery.objects.exclude(subscription=subscription).exists()


def test_a_receiver_that_keeps_failing_is_given_up_and_logged(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    fake_api.reply("/down", Reply(503))
    subscription = subscribe(fake_api.base_url + "/down", "started")
    deploy_xml("hooked2", sequence("hooked2", []))
    start_instance(key="hooked2")
    # The workers back off from 0.2 s doubling to 2 s (BATON_RETRY_*), 8 attempts.
    wait_until(
        lambda: WebhookDelivery.objects.filter(subscription=subscription, status="failed").exists(),
        timeout=90,
        what="the delivery to be given up",
    )
    delivery = WebhookDelivery.objects.get(subscription=subscription)
    assert (delivery.attempts, delivery.last_response_code) == (8, 503)
    assert "503" in delivery.last_error
    assert len(fake_api.requests_to("/down")) == 8


def test_subscriptions_and_the_delivery_log_over_the_api(
    api_client_for, make_user, fake_api: FakeApi
) -> None:
    operator: User = make_user("olga_ops", "operators")
    client = api_client_for(operator)
    created = client.post(
        "/api/v1/webhook-subscriptions/",
        {
            "name": "crm",
            "url": fake_api.base_url + "/crm",
            "secret_name": "CRM_TOKEN",
            "event_types": ["task_created", "incident"],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    bad = client.post(
        "/api/v1/webhook-subscriptions/",
        {"name": "x", "url": "ftp://x", "secret_name": "CRM_TOKEN", "event_types": ["nope"]},
        format="json",
    )
    assert bad.status_code == 400
    assert (
        api_client_for(make_user("nobody")).get("/api/v1/webhook-subscriptions/").status_code == 403
    )
    changed = client.patch(
        f"/api/v1/webhook-subscriptions/{pk}/", {"enabled": False}, format="json"
    )
    assert (changed.status_code, changed.json()["enabled"]) == (200, False)
    log = client.get(f"/api/v1/webhook-subscriptions/{pk}/deliveries/")
    assert (log.status_code, log.json()["count"]) == (200, 0)
    assert client.delete(f"/api/v1/webhook-subscriptions/{pk}/").status_code == 204
    assert not WebhookSubscription.objects.exists()
