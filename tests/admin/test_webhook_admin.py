"""Webhooks in the admin: operators declare inbound webhooks (checked), subscribe URLs, read
the delivery log and send failed deliveries again; others see none of it."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from engine.models import InboundWebhook, WebhookDelivery, WebhookSubscription
from engine.services.webhooks_out import deliver_webhook

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(make_staff: Any) -> User:
    user: User = make_staff("odile_ops", "operators")
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


HOOK_FORM = {
    "name": "orders",
    "action": "message",
    "process_key": "",
    "message_name": "",
    "correlation": '{"order_id": "order.id"}',
    "business_key_path": "",
    "payload_variable": "webhook",
    "secret_name": "HOOK_SECRET",
    "signature_style": "github",
    "signature_header": "",
    "tolerance_seconds": "300",
    "enabled": "on",
}


def test_an_operator_declares_an_inbound_webhook_and_mistakes_are_shown(operator: User) -> None:
    client = client_for(operator)
    refused = client.post("/admin/engine/inboundwebhook/add/", HOOK_FORM)
    assert refused.status_code == 200
    assert "Name the message that a delivery sends." in refused.content.decode()
    assert not InboundWebhook.objects.exists()
    saved = client.post(
        "/admin/engine/inboundwebhook/add/", HOOK_FORM | {"message_name": "order_placed"}
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    hook = InboundWebhook.objects.get()
    assert (hook.message_name, hook.correlation) == ("order_placed", {"order_id": "order.id"})


def test_others_see_no_webhooks(make_staff: Any) -> None:
    client = client_for(make_staff("sid_staff"))
    for page in ("inboundwebhook", "webhooksubscription", "webhookdelivery"):
        assert client.get(f"/admin/engine/{page}/").status_code == 403


def test_the_policy_refuses_a_metadata_url_and_the_operator_sends_it_again(
    operator: User, settings: Any
) -> None:
    settings.BATON_SECRETS = {"HOOK_SECRET": "hook-signing-secret-5b1e9c"}
    subscription = WebhookSubscription.objects.create(
        name="metadata",
        url="http://169.254.169.254/latest/",
        secret_name="HOOK_SECRET",
        event_types=["started"],
    )
    delivery = WebhookDelivery.objects.create(
        subscription=subscription, event_type="started", payload={"type": "x"}
    )
    deliver_webhook(str(delivery.id))
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "outbound policy" in delivery.last_error
    client = client_for(operator)
    page = client.get("/admin/engine/webhookdelivery/")
    assert "metadata" in page.content.decode()
    answer = client.post(
        "/admin/engine/webhookdelivery/",
        {"action": "send_again", "_selected_action": [str(delivery.id)]},
    )
    assert answer.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)


def test_an_operator_subscribes_a_url_and_mistakes_are_shown(operator: User) -> None:
    client = client_for(operator)
    form = {
        "name": "crm",
        "url": "ftp://crm.example.com/hook",
        "secret_name": "CRM_TOKEN",
        "event_types": "completed,incident",
        "process_key": "",
        "enabled": "on",
    }
    refused = client.post("/admin/engine/webhooksubscription/add/", form)
    assert refused.status_code == 200
    assert "Give an http or https URL." in refused.content.decode()
    saved = client.post(
        "/admin/engine/webhooksubscription/add/", form | {"url": "https://crm.example.com/hook"}
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    subscription = WebhookSubscription.objects.get()
    assert (subscription.event_types, subscription.created_by) == (
        ["completed", "incident"],
        operator,
    )
