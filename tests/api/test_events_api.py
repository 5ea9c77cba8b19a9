"""POST /api/v1/messages/ and /api/v1/signals/, and `waiting_for` on instances."""

import datetime
import json

import pytest

from engine import clock
from engine.models import EventDelivery, InstanceEvent
from engine.services import start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.api.test_endpoints import problem
from tests.engine import event_diagrams

pytestmark = pytest.mark.django_db
MESSAGES = "/api/v1/messages/"
SIGNALS = "/api/v1/signals/"


def deploy_xml(xml: str, name: str) -> None:
    deploy(name=name, files=[UploadedFile(name, xml.encode())], actor=None)


@pytest.fixture
def operator(make_user):
    return make_user("olga_operator", "operators")


@pytest.fixture
def orders(make_user):
    deploy_xml(event_diagrams.waits_for_message("payment_received"), "order.bpmn")
    owner = make_user("owen_owner")
    return [
        start_instance(key="order", variables={"order_id": n}, business_key=f"A-{n}", actor=owner)
        for n in (1, 2)
    ]


def test_message_reaches_the_instance_with_the_key(orders, api_client_for, make_user):
    client = api_client_for(make_user("integration", "integrations"))
    response = client.post(
        MESSAGES,
        {
            "name": "payment_received",
            "correlation_keys": {"order_id": 2},
            "variables": {"paid": True},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "name": "payment_received",
        "message_id": None,
        "outcome": "correlated",
        "instance": str(orders[1].pk),
        "process": "order",
        "instance_status": "waiting",
    }
    assert "variables" not in body  # the sender may not be allowed to read the instance


def test_message_errors(orders, api_client_for, anonymous_client, make_user, settings):
    client = api_client_for(make_user("integration", "integrations"))
    body = problem(client.post(MESSAGES, {"name": "payment_received"}, format="json"), 409)
    assert {e["instance"] for e in body["errors"]} == {str(o.pk) for o in orders}
    problem(
        client.post(MESSAGES, {"name": "payment_received", "business_key": "A-3"}, format="json"),
        404,
    )
    problem(client.post(MESSAGES, {"name": "unknown"}, format="json"), 404)
    problem(client.post(MESSAGES, {"variables": {}}, format="json"), 400)
    problem(client.post(MESSAGES, {"name": "x", "variables": [1]}, format="json"), 400)
    problem(client.post(MESSAGES, {"name": "x", "correlation_keys": "k"}, format="json"), 400)
    problem(anonymous_client.post(MESSAGES, {"name": "x"}, format="json"), 401)
    settings.BATON_EVENT_SENDER_GROUPS = ["partners"]
    problem(
        client.post(MESSAGES, {"name": "payment_received", "business_key": "A-1"}, format="json"),
        403,
    )
    problem(client.post(SIGNALS, {"name": "x"}, format="json"), 403)
    assert not InstanceEvent.objects.filter(type="message_received").exists()


def test_an_ordinary_user_cannot_probe_other_people_s_variables(api_client_for, make_user):
    """The answer to a message (404 or 200 with the instance) tells whether an instance waits
    with those correlation values: only integrations, operators and superusers may ask."""
    deploy_xml(event_diagrams.waits_for_message("payment_received"), "order.bpmn")
    secret = start_instance(
        key="order", variables={"order_id": 7, "salary": 123456}, actor=make_user("owen_owner")
    )
    prober = api_client_for(make_user("peter_prober", "managers", "designers"))
    for guess in (1, 123456):
        body = problem(
            prober.post(
                MESSAGES,
                {"name": "payment_received", "correlation_keys": {"salary": guess}},
                format="json",
            ),
            403,
        )
        assert str(secret.pk) not in json.dumps(body)
    problem(prober.post(SIGNALS, {"name": "payment_received"}, format="json"), 403)
    secret.refresh_from_db()
    assert secret.status == "waiting"
    assert not InstanceEvent.objects.filter(type="message_received").exists()
    # An integration may send it; so may operators (and superusers).
    for sender in (make_user("ian", "integrations"), make_user("otto", "operators")):
        response = api_client_for(sender).post(
            MESSAGES, {"name": "payment_received", "correlation_keys": {"salary": 1}}, format="json"
        )
        problem(response, 404)


def test_duplicate_message_id_returns_the_first_result(orders, api_client_for, make_user):
    client = api_client_for(make_user("integration", "integrations"))
    message = {"name": "payment_received", "business_key": "A-1", "message_id": "tx-77"}
    first = client.post(MESSAGES, {**message, "variables": {"paid": 1}}, format="json")
    again = client.post(MESSAGES, {**message, "variables": {"paid": 2}}, format="json")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert first.json()["message_id"] == "tx-77"
    orders[0].refresh_from_db()
    assert orders[0].variables["paid"] == 1
    assert InstanceEvent.objects.filter(type="message_received").count() == 1


def test_message_start_and_deferred_answers(api_client_for, make_user, operator):
    deploy_xml(event_diagrams.message_start("order_placed"), "fulfilment.bpmn")
    client = api_client_for(make_user("integration", "integrations"))
    started = client.post(MESSAGES, {"name": "order_placed", "business_key": "F-1"}, format="json")
    assert started.status_code == 201 and started.json()["outcome"] == "started"
    deploy_xml(event_diagrams.waits_for_message("payment_received"), "order.bpmn")
    waiting = start_instance(key="order", business_key="S-1")
    api_client_for(operator).post(f"/api/v1/instances/{waiting.pk}/suspend/", {}, format="json")
    deferred = client.post(
        MESSAGES, {"name": "payment_received", "business_key": "S-1"}, format="json"
    )
    assert deferred.status_code == 202
    assert deferred.json()["outcome"] == "deferred"
    assert deferred.json()["instance_status"] == "suspended"


def test_signal_is_accepted_for_every_waiting_instance(api_client_for, make_user):
    deploy_xml(event_diagrams.waits_for_signal("market_closed"), "trader.bpmn")
    for _ in range(3):
        start_instance(key="trader")
    client = api_client_for(make_user("integration", "integrations"))
    response = client.post(SIGNALS, {"name": "market_closed", "variables": {"x": 1}}, format="json")
    assert response.status_code == 202
    assert response.json() == {"name": "market_closed", "instances": 3, "start_events": 0}
    assert EventDelivery.objects.filter(status="pending").count() == 3
    problem(client.post(SIGNALS, {"name": ""}, format="json"), 400)


def test_waiting_for_shows_timers_messages_and_signals(api_client_for, make_user, operator):
    deploy_xml(event_diagrams.approval_with_escalation("P2D"), "approval.bpmn")
    deploy_xml(event_diagrams.waits_for_message("payment_received"), "order.bpmn")
    deploy_xml(event_diagrams.waits_for_signal("market_closed"), "trader.bpmn")
    client = api_client_for(operator)
    approval = start_instance(key="escalating_approval")
    order = start_instance(key="order")
    trader = start_instance(key="trader")

    waits = client.get(f"/api/v1/instances/{approval.pk}/").json()["waiting_for"]
    timer = next(w for w in waits if w["type"] == "timer")
    due = datetime.datetime.fromisoformat(timer["due_at"])
    assert abs(due - (clock.now() + datetime.timedelta(days=2))).total_seconds() < 10
    assert timer["element_id"] == "overdue"
    assert {w["type"] for w in waits} == {"user_task", "timer"}

    (message,) = client.get(f"/api/v1/instances/{order.pk}/").json()["waiting_for"]
    assert message == {
        "type": "message",
        "element_id": "wait",
        "message": "payment_received",
        "correlation": {},
    }
    (signal,) = client.get(f"/api/v1/instances/{trader.pk}/").json()["waiting_for"]
    assert signal == {"type": "signal", "element_id": "wait", "signal": "market_closed"}
    listed = client.get("/api/v1/instances/?definition=trader").json()["results"]
    assert listed[0]["waiting_for"] == [signal]


def test_admin_lists_deliveries_triggers_and_timers(django_user_model):
    from django.test import Client

    deploy_xml(event_diagrams.timer_start("R/PT1H"), "scheduled.bpmn")
    deploy_xml(event_diagrams.wait_for_timer("PT1H"), "waits.bpmn")
    start_instance(key="waits")
    admin = django_user_model.objects.create_superuser("root", password="x")
    browser = Client()
    browser.force_login(admin)
    for path in ("timer", "starttrigger", "eventdelivery"):
        page = browser.get(f"/admin/engine/{path}/")
        assert page.status_code == 200, path
    assert "R/PT1H" in browser.get("/admin/engine/starttrigger/").content.decode()


def test_a_blank_query_filter_filters_nothing(orders, api_client_for, operator):
    response = api_client_for(operator).get("/api/v1/instances/?business_key=%20&definition=")
    assert response.status_code == 200 and response.json()["count"] == 2
