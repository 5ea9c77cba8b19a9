"""The trip booking saga (processes/bpmn/trip_booking.bpmn) tested with Baton's pytest plugin,
as a team would test its own saga without any supplier's API: every booking, cancellation and
payment is a mock, and the path shows which compensation handlers ran, latest first."""

from typing import Any

import pytest

from baton.testing.coverage import Coverage
from baton.testing.runner import ProcessTester
from tests.helpers import EXAMPLES_DIR

pytestmark = pytest.mark.django_db

TRIP = EXAMPLES_DIR / "trip_booking.bpmn"
WITHIN_LIMIT = {"flight_price": 600, "hotel_price": 400, "car_price": 150}
OVER_LIMIT = {"flight_price": 1800, "hotel_price": 900, "car_price": 300}
CANCELS = ["cancel_car", "cancel_hotel", "cancel_flight"]  # latest booking first


def answer(body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    return {"status": status, "headers": {}, "body": body}


@pytest.fixture
def trips(baton: ProcessTester) -> ProcessTester:
    assert baton.load(TRIP) == ["trip_booking"]
    for kind in ("flight", "hotel", "car"):
        baton.mock(f"book_{kind}", answer({"booking_id": f"{kind}-1"}, 201))
        baton.mock(f"cancel_{kind}", answer({"status": "cancelled"}))
    return baton


def start(trips: ProcessTester, **prices: int) -> Any:
    variables = {"trip_id": "TRIP-T", "traveller": "Ada", "fail_payment": False, **prices}
    return trips.start("trip_booking", variables)


def cancelled(trips: ProcessTester) -> list[str]:
    """The cancellation calls, in the order the handlers made them."""
    return [element for element, _, _ in trips.mocks.calls if element.startswith("cancel_")]


def test_a_paid_trip_is_booked_and_nothing_is_undone(trips):
    trips.mock("pay_trip", answer({"payment_id": "pay-1"}, 201))
    run = start(trips, **WITHIN_LIMIT)
    assert run.passed("book_flight", "book_hotel", "book_car", "pay_trip", "record_booking")
    assert run.ended_at("trip_booked")
    assert (run.variables["outcome"], run.variables["payment_id"]) == ("booked", "pay-1")
    assert cancelled(trips) == []


def test_a_declined_payment_undoes_the_three_bookings_latest_first(trips):
    trips.mock("pay_trip", error="HTTP_402", message="Payment Required")
    run = start(trips, **WITHIN_LIMIT)
    assert run.passed("pay_trip", "undo_bookings", *CANCELS, "record_decline")
    assert run.ended_at("trip_cancelled")
    assert run.variables["outcome"] == "payment declined"
    assert cancelled(trips) == CANCELS
    # Each handler cancelled the booking its activity made.
    urls = {element: params["url"] for element, _, params in trips.mocks.calls}
    assert urls["cancel_car"].endswith("/bookings/car-1/cancel/")
    assert urls["cancel_flight"].endswith("/bookings/flight-1/cancel/")


def test_a_trip_over_the_limit_waits_for_a_manager_who_approves(trips):
    trips.mock("pay_trip", answer({"payment_id": "pay-2"}, 201))
    run = start(trips, **OVER_LIMIT)
    assert run.waiting_at("approve_trip")
    run.complete("approve_trip", {"decision": "approve"})
    assert run.ended_at("trip_booked") and cancelled(trips) == []


def test_a_rejected_trip_ends_in_a_compensation_end_event(trips):
    run = start(trips, **OVER_LIMIT)
    run.complete("approve_trip", {"decision": "reject"})
    assert run.passed("record_rejection", *CANCELS)
    assert run.ended_at("trip_rejected")
    assert run.variables["outcome"] == "rejected"
    assert cancelled(trips) == CANCELS


def test_cancelling_while_waiting_for_approval_undoes_the_bookings(trips):
    run = start(trips, **OVER_LIMIT)
    run.cancel("traveller fell ill")
    assert run.status == "terminated"
    assert run.passed(*CANCELS)
    assert not run.passed("pay_trip")
    assert cancelled(trips) == CANCELS
    assert run.variables["trip_id"] == "TRIP-T"


def covered(run: Any) -> set[str]:
    coverage = Coverage()
    coverage.add_instance(run.id)
    return coverage.processes["trip_booking"].elements_run


def test_a_compensation_boundary_event_is_covered_when_its_handler_ran(trips):
    trips.mock("pay_trip", error="HTTP_402", message="Payment Required")
    ran = covered(start(trips, **WITHIN_LIMIT))
    assert {"flight_booked", "hotel_booked", "car_booked", "cancel_flight"} <= ran


def test_a_compensation_boundary_event_is_not_covered_when_nothing_was_undone(trips):
    trips.mock("pay_trip", answer({"payment_id": "pay-3"}, 201))
    ran = covered(start(trips, **WITHIN_LIMIT))
    assert "book_flight" in ran
    assert not {"flight_booked", "cancel_flight"} & ran
