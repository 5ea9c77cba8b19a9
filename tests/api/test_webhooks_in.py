"""Inbound webhooks over HTTP: signatures (GitHub and timestamped), forged deliveries, replays,
CloudEvents (structured and binary), message correlation from the payload."""

import json
import threading
import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from engine.connectors.webhook_signatures import github_signature, timestamped_signature
from engine.models import InboundWebhook, InstanceEvent, OperationKey, ProcessInstance
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine import event_diagrams

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "hook-signing-secret-5b1e9c"
URL = "/api/v1/webhooks/{}/"


@pytest.fixture(autouse=True)
def _secret_store(settings: Any) -> None:
    settings.BATON_SECRETS = {"HOOK_SECRET": SECRET}


def deploy_xml(xml: str, name: str = "events.bpmn") -> None:
    deploy(name=name, files=[UploadedFile(name, xml.encode())], actor=None)


def start_hook(**fields: Any) -> InboundWebhook:
    deploy_xml(event_diagrams.message_start("order_placed", "fulfilment"))
    values = {
        "name": "orders",
        "action": InboundWebhook.Action.MESSAGE,
        "message_name": "order_placed",
        "secret_name": "HOOK_SECRET",
        "business_key_path": "order.number",
    } | fields
    return InboundWebhook.objects.create(**values)


def post(name: str, body: bytes, content_type: str = "application/json", **headers: str) -> Any:
    return Client().post(URL.format(name), data=body, content_type=content_type, headers=headers)


def signed(body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": github_signature(SECRET, body)}


ORDER = json.dumps({"order": {"number": "A-17", "total": 30}}).encode()


def test_a_signed_delivery_starts_an_instance_with_the_payload() -> None:
    start_hook()
    response = post("orders", ORDER, **signed(ORDER), **{"X-GitHub-Delivery": "d-1"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["outcome"], body["process"]) == ("started", "fulfilment")
    instance = ProcessInstance.objects.get(pk=body["instance"])
    assert instance.business_key == "A-17"
    assert instance.variables["webhook"] == {"order": {"number": "A-17", "total": 30}}
    audit = InstanceEvent.objects.get(instance=instance, type="webhook_received")
    assert audit.payload == {"webhook": "orders", "delivery": "id:d-1"}


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no signature
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": github_signature("another-secret-value", ORDER)},
        {"X-Hub-Signature-256": github_signature(SECRET, ORDER + b" ")},  # another body
        {"X-Hub-Signature-256": "md5=abc"},
    ],
)
def test_a_forged_delivery_is_401_and_changes_nothing(headers: dict[str, str]) -> None:
    start_hook()
    response = post("orders", ORDER, **headers)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert not ProcessInstance.objects.exists()
    assert not OperationKey.objects.exists()


def test_a_replayed_delivery_answers_the_same_and_changes_nothing() -> None:
    start_hook()
    first = post("orders", ORDER, **signed(ORDER), **{"X-GitHub-Delivery": "d-2"})
    again = post("orders", ORDER, **signed(ORDER), **{"X-GitHub-Delivery": "d-2"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert ProcessInstance.objects.count() == 1
    assert InstanceEvent.objects.filter(type="webhook_received").count() == 1
    # Without a delivery id, the same body is the same delivery.
    bare = json.dumps({"order": {"number": "B-1"}}).encode()
    assert post("orders", bare, **signed(bare)).status_code == 200
    assert post("orders", bare, **signed(bare)).json()["instance"] == str(
        ProcessInstance.objects.get(business_key="B-1").pk
    )
    assert ProcessInstance.objects.count() == 2


def test_timestamped_signatures_within_the_tolerance_only() -> None:
    start_hook(signature_style=InboundWebhook.SignatureStyle.TIMESTAMPED, tolerance_seconds=60)
    fresh = timestamped_signature(SECRET, ORDER)
    assert post("orders", ORDER, **{"Webhook-Signature": fresh}).status_code == 200
    stale = timestamped_signature(SECRET, ORDER, int(time.time()) - 3600)
    other = json.dumps({"order": {"number": "C-1"}}).encode()
    stale = timestamped_signature(SECRET, other, int(time.time()) - 3600)
    response = post("orders", other, **{"Webhook-Signature": stale})
    assert response.status_code == 401
    assert "tolerance" in response.json()["detail"]
    assert not ProcessInstance.objects.filter(business_key="C-1").exists()


def test_a_structured_cloudevent_correlates_to_the_waiting_instance() -> None:
    deploy_xml(event_diagrams.waits_for_message("payment_received", "order"))
    waiting = start_instance(key="order", variables={"order_id": 42})
    start_instance(key="order", variables={"order_id": 43})
    InboundWebhook.objects.create(
        name="payments",
        action=InboundWebhook.Action.MESSAGE,
        message_name="payment_received",
        correlation={"order_id": "payment.order"},
        secret_name="HOOK_SECRET",
    )
    event = {
        "specversion": "1.0",
        "id": "evt-9",
        "source": "/psp",
        "type": "com.psp.payment.succeeded",
        "data": {"payment": {"order": 42, "amount": 30}},
    }
    body = json.dumps(event).encode()
    response = post("payments", body, "application/cloudevents+json", **signed(body))
    assert response.status_code == 200, response.content
    assert (response.json()["outcome"], response.json()["instance"]) == (
        "correlated",
        str(waiting.pk),
    )
    waiting.refresh_from_db()
    assert waiting.variables["webhook"] == {"payment": {"order": 42, "amount": 30}}
    assert waiting.variables["webhook_event"]["type"] == "com.psp.payment.succeeded"
    assert waiting.human_tasks.filter(element_id="ship").exists()
    # The same CloudEvent (source and id) again changes nothing.
    assert post("payments", body, "application/cloudevents+json", **signed(body)).json() == (
        response.json()
    )
    assert waiting.events.filter(type="message_received").count() == 1


def test_a_binary_cloudevent_starts_an_instance() -> None:
    start_hook(business_key_path="")
    body = json.dumps({"order": {"number": "D-4"}}).encode()
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "e-1",
        "ce-source": "/shop",
        "ce-type": "shop.order.placed",
        **signed(body),
    }
    response = post("orders", body, **headers)
    assert response.status_code == 200, response.content
    instance = ProcessInstance.objects.get(pk=response.json()["instance"])
    assert instance.variables["webhook_event"]["id"] == "e-1"
    assert post("orders", body, **headers).json() == response.json()
    assert ProcessInstance.objects.count() == 1


def test_nothing_waits_is_404_and_the_sender_may_retry() -> None:
    deploy_xml(event_diagrams.waits_for_message("payment_received", "order"))
    InboundWebhook.objects.create(
        name="payments",
        action=InboundWebhook.Action.MESSAGE,
        message_name="payment_received",
        correlation={"order_id": "order"},
        secret_name="HOOK_SECRET",
    )
    body = json.dumps({"order": 5}).encode()
    assert post("payments", body, **signed(body)).status_code == 404
    waiting = start_instance(key="order", variables={"order_id": 5})
    response = post("payments", body, **signed(body))
    assert (response.status_code, response.json()["instance"]) == (200, str(waiting.pk))


def test_unknown_webhook_bad_json_and_big_bodies(settings: Any) -> None:
    start_hook()
    assert post("nothing-here", ORDER, **signed(ORDER)).status_code == 404
    bad = b"{not json"
    response = post("orders", bad, **signed(bad))
    assert response.status_code == 400
    settings.BATON_WEBHOOK_MAX_BYTES = 1000
    big = json.dumps({"order": {"number": "E", "pad": "x" * 2000}}).encode()
    assert post("orders", big, **signed(big)).status_code == 413
    assert not ProcessInstance.objects.exists()


def test_a_start_webhook_starts_its_process(settings: Any) -> None:
    deploy_xml(event_diagrams.waits_for_message("payment_received", "order"))
    InboundWebhook.objects.create(
        name="new-order", action="start", process_key="order", secret_name="HOOK_SECRET"
    )
    response = post("new-order", ORDER, **signed(ORDER))
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "started"
    assert ProcessInstance.objects.get().definition.key == "order"


def test_an_undeclared_secret_is_503_and_changes_nothing(settings: Any) -> None:
    start_hook(secret_name="NOT_DECLARED")
    response = post("orders", ORDER, **signed(ORDER))
    assert response.status_code == 503
    assert not ProcessInstance.objects.exists()


def test_two_simultaneous_copies_of_a_delivery_start_one_instance() -> None:
    start_hook()
    body = json.dumps({"order": {"number": "F-1"}}).encode()
    headers = {**signed(body), "X-GitHub-Delivery": "same-id"}
    barrier = threading.Barrier(2)
    answers: list[Any] = []

    def send() -> None:
        barrier.wait()
        try:
            answers.append(post("orders", body, **headers))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert ProcessInstance.objects.count() == 1
    assert InstanceEvent.objects.filter(type="webhook_received").count() == 1


def test_operators_declare_webhooks_over_the_api(api_client_for: Any, make_user: Any) -> None:
    client = api_client_for(make_user("olivia_ops", "operators"))
    created = client.post(
        "/api/v1/inbound-webhooks/",
        {
            "name": "payments",
            "action": "message",
            "message_name": "payment_received",
            "correlation": {"order_id": "payment.order"},
            "secret_name": "HOOK_SECRET",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["url"] == "/api/v1/webhooks/payments/"
    assert InboundWebhook.objects.get().correlation == {"order_id": "payment.order"}
    incomplete = client.post(
        "/api/v1/inbound-webhooks/",
        {"name": "starts", "action": "start", "secret_name": "HOOK_SECRET"},
        format="json",
    )
    assert incomplete.status_code == 400
    assert incomplete.json()["errors"][0]["field"] == "process_key"
    twice = client.post(
        "/api/v1/inbound-webhooks/",
        {"name": "payments", "action": "start", "process_key": "p", "secret_name": "HOOK_SECRET"},
        format="json",
    )
    assert twice.status_code == 409
    outsider = api_client_for(make_user("ursula"))
    assert outsider.get("/api/v1/inbound-webhooks/").status_code == 403
    pk = created.json()["id"]
    assert (
        client.patch(f"/api/v1/inbound-webhooks/{pk}/", {"enabled": False}, format="json").json()[
            "enabled"
        ]
        is False
    )
    assert client.delete(f"/api/v1/inbound-webhooks/{pk}/").status_code == 204
    assert not InboundWebhook.objects.exists()
