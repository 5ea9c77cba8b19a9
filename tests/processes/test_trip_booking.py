"""The trip_booking example end to end (issue 24): a saga over the demo trip API on real
Celery workers, the demo API reached on the live server (BATON_BASE_URL).

- a declined payment compensates the three bookings, latest first, each cancelled once;
- the happy path books, has a manager approve and pays;
- an operator's cancel while the trip waits for approval compensates what was booked and
  terminates the instance;
- a worker killed while a cancellation's call is in flight: the call is made again with the
  same Idempotency-Key, and the demo API cancels the booking once.
"""

import signal
from typing import Any

import pytest
from django.contrib.auth.models import User

from engine.models import DemoBooking, HumanTask, InstanceEvent, ProcessInstance, ServiceJob
from engine.selectors import instance_diagram
from engine.services import cancel_instance, complete_human_task, start_instance
from tests.engine.service_fixtures import Workers, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PRICES = {"flight_price": 600, "hotel_price": 400, "car_price": 150}  # 1150: no approval
OVER_LIMIT = {"flight_price": 1800, "hotel_price": 900, "car_price": 300}  # 3000: approval


def start_trip(trip: str, **variables: Any) -> ProcessInstance:
    return start_instance(
        key="trip_booking",
        business_key=trip,
        variables={"trip_id": trip, "traveller": "Ada", **PRICES, **variables},
    )


def ended(instance: ProcessInstance) -> bool:
    instance.refresh_from_db()
    return instance.is_finished or instance.status == "incident"


def bookings(trip: str) -> dict[str, DemoBooking]:
    return {b.kind: b for b in DemoBooking.objects.filter(trip=trip)}


def wait_for_approval(instance: ProcessInstance) -> HumanTask:
    wait_until(
        lambda: HumanTask.objects.filter(instance=instance, status="open").exists(),
        timeout=60,
        what="the trip to wait for approval",
    )
    return HumanTask.objects.get(instance=instance, status="open")


def assert_cancelled_once_latest_first(trip: str) -> None:
    booked = bookings(trip)
    kinds = ["flight", "hotel", "car"]
    assert all(booked[k].status == "cancelled" for k in kinds), booked
    assert [booked[k].cancel_calls for k in kinds] == [1, 1, 1]
    by_time = sorted(kinds, key=lambda k: booked[k].cancelled_at)  # type: ignore[arg-type, return-value]
    assert by_time == ["car", "hotel", "flight"]  # the reverse of the booking order
    assert "payment" not in booked


def compensations(instance: ProcessInstance) -> list[tuple[str, str, str]]:
    return [
        (e.element_id, e.payload.get("handler", ""), e.payload.get("reason", ""))
        for e in InstanceEvent.objects.filter(
            instance=instance, type="compensation_started"
        ).order_by("created_at", "id")
    ]


def test_a_declined_payment_cancels_the_bookings_latest_first(
    celery_workers: Workers, example_definitions: Any
) -> None:
    instance = start_trip("TRIP-DECLINED", fail_payment=True)
    wait_until(lambda: ended(instance), timeout=90, what="the saga to end")
    assert instance.status == "completed", instance.incident
    assert instance.variables["outcome"] == "payment declined"
    assert_cancelled_once_latest_first("TRIP-DECLINED")
    assert compensations(instance) == [
        ("book_car", "cancel_car", "throw"),
        ("book_hotel", "cancel_hotel", "throw"),
        ("book_flight", "cancel_flight", "throw"),
    ]
    # Seen, not guessed: the admin's diagram marks the three bookings as compensated.
    assert instance_diagram(instance)["compensated"] == ["book_car", "book_flight", "book_hotel"]


def test_the_happy_path_books_gets_approval_and_pays(
    celery_workers: Workers, example_definitions: Any, approver: User
) -> None:
    instance = start_trip("TRIP-OK", **OVER_LIMIT)
    task = wait_for_approval(instance)
    assert task.element_id == "approve_trip"
    complete_human_task(task_id=task.id, user=approver, variables={"decision": "approve"})
    wait_until(lambda: ended(instance), timeout=60, what="the payment")
    assert (instance.status, instance.variables["outcome"]) == ("completed", "booked")
    booked = bookings("TRIP-OK")
    assert {k: b.status for k, b in booked.items()} == {
        "flight": "booked",
        "hotel": "booked",
        "car": "booked",
        "payment": "paid",
    }
    assert float(booked["payment"].amount) == 3000
    assert instance.variables["payment_id"] == str(booked["payment"].pk)
    assert compensations(instance) == []


def test_cancel_while_waiting_for_approval_compensates_and_terminates(
    celery_workers: Workers, example_definitions: Any, api_client_for: Any, make_user: Any
) -> None:
    operator = make_user("olga_operator", "operators")
    instance = start_trip("TRIP-CANCEL", **OVER_LIMIT)
    task = wait_for_approval(instance)
    # A slow supplier holds the first cancellation a moment: the compensation is under way
    # when the second cancel arrives.
    DemoBooking.objects.filter(trip="TRIP-CANCEL", kind="car").update(cancel_delay=3)
    client = api_client_for(operator)
    url = f"/api/v1/instances/{instance.pk}/cancel/"
    response = client.post(url, {"reason": "traveller fell ill"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] in ("running", "waiting")
    again = client.post(url, {"reason": "twice"}, format="json")
    assert again.status_code == 409 and "already being cancelled" in again.json()["detail"]
    wait_until(lambda: ended(instance), timeout=90, what="the compensation to finish")
    assert instance.status == "terminated", instance.incident
    assert_cancelled_once_latest_first("TRIP-CANCEL")
    # The variables the trip had reached stay, with what the handlers added.
    assert instance.variables["trip_id"] == "TRIP-CANCEL"
    assert {"flight_booking", "cancel_car_result"} <= set(instance.variables)
    task.refresh_from_db()
    assert task.status == HumanTask.Status.CANCELLED
    assert compensations(instance) == [
        ("book_car", "cancel_car", "cancel"),
        ("book_hotel", "cancel_hotel", "cancel"),
        ("book_flight", "cancel_flight", "cancel"),
    ]
    trail = [
        (e.type, e.actor.username if e.actor else None)
        for e in InstanceEvent.objects.filter(
            instance=instance,
            type__in=["cancel_requested", "compensation_started", "terminated", "completed"],
        ).order_by("created_at", "id")
    ]
    assert trail[0] == ("cancel_requested", "olga_operator")
    assert [t for t, _ in trail[1:4]] == ["compensation_started"] * 3
    assert trail[4:] == [("terminated", "olga_operator")]
    requested = InstanceEvent.objects.get(instance=instance, type="cancel_requested")
    assert requested.payload["handlers"] >= 1
    assert requested.payload["reason"] == "traveller fell ill"
    history = client.get(f"/api/v1/instances/{instance.pk}/history/?page_size=200").json()
    types = [e["type"] for e in history["results"]]
    assert types.index("cancel_requested") < types.index("terminated")
    assert "completed" not in types


def test_a_worker_killed_mid_cancellation_cancels_the_booking_once(
    celery_workers: Workers, example_definitions: Any, make_user: Any
) -> None:
    operator = make_user("olga_operator", "operators")
    instance = start_trip("TRIP-KILL", **OVER_LIMIT)
    wait_for_approval(instance)
    # The car is compensated first; its supplier cancels, then answers 30 s late: long
    # enough to kill the worker that waits for the answer.
    DemoBooking.objects.filter(trip="TRIP-KILL", kind="car").update(cancel_delay=30)
    cancel_instance(instance_id=instance.pk, actor=operator, reason="duplicate trip")
    car = DemoBooking.objects.get(trip="TRIP-KILL", kind="car")

    def cancelled_and_waiting() -> bool:
        car.refresh_from_db()
        return car.status == "cancelled"

    wait_until(cancelled_and_waiting, timeout=60, what="the car's cancellation to arrive")
    for child in celery_workers.pool_children():
        child.send_signal(signal.SIGKILL)
    wait_until(lambda: ended(instance), timeout=120, what="the instance to terminate")
    assert instance.status == "terminated", instance.incident
    car.refresh_from_db()
    job = ServiceJob.objects.get(instance=instance, element_id="cancel_car")
    # Called again after the kill, with the same key: answered as before, cancelled once.
    assert car.cancel_calls == 2 and car.cancel_key == job.idempotency_key
    assert (job.status, job.attempt) == ("succeeded", 2)
    booked = bookings("TRIP-KILL")
    assert [booked[k].cancel_calls for k in ("flight", "hotel")] == [1, 1]
    assert all(b.status == "cancelled" for b in booked.values())
    assert InstanceEvent.objects.filter(instance=instance, type="terminated").count() == 1
    assert len(compensations(instance)) == 3
