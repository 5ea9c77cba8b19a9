"""The demo trip API (config/demo_api.py) that the trip_booking example calls: bookings,
cancellations that honour Idempotency-Key, payments that can be declined, and the list."""

import pytest
from django.test import Client

from engine.models import DemoBooking

pytestmark = pytest.mark.django_db
TRIPS = "/demo-api/trips"


def post(client: Client, path: str, body: dict | None = None, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        f"{TRIPS}{path}", body or {}, content_type="application/json", headers=headers
    )


def test_a_booking_call_repeated_with_its_key_books_once() -> None:
    client = Client()
    first = post(client, "/flight/", {"trip": "T-1", "amount": 600}, key="baton-job-1")
    again = post(client, "/flight/", {"trip": "T-1", "amount": 600}, key="baton-job-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["booking_id"] == again.json()["booking_id"]
    assert first.json()["status"] == "booked" and first.json()["amount"] == 600.0
    other = post(client, "/hotel/", {"trip": "T-1", "amount": 400}, key="baton-job-2")
    assert other.json()["booking_id"] != first.json()["booking_id"]
    assert DemoBooking.objects.filter(trip="T-1").count() == 2


def test_a_cancel_repeated_with_its_key_cancels_once_another_key_finds_it_cancelled() -> None:
    client = Client()
    booking = post(client, "/car/", {"trip": "T-2", "amount": 150}).json()["booking_id"]
    cancel = f"/bookings/{booking}/cancel/"
    first = post(client, cancel, key="baton-job-9")
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    cancelled_at = first.json()["cancelled_at"]
    replay = post(client, cancel, key="baton-job-9")
    assert replay.status_code == 200 and replay.json()["cancelled_at"] == cancelled_at
    assert post(client, cancel, key="someone-else").status_code == 409
    assert post(client, cancel).status_code == 409
    row = DemoBooking.objects.get(pk=booking)
    assert (row.status, row.cancel_key, row.cancel_calls) == ("cancelled", "baton-job-9", 4)
    assert post(client, "/bookings/00000000-0000-0000-0000-000000000000/cancel/").status_code == 404


def test_payments_are_declined_over_the_limit_or_when_told() -> None:
    client = Client()
    paid = post(client, "/payments/", {"trip": "T-3", "amount": 1150})
    assert paid.status_code == 201 and paid.json()["status"] == "paid"
    assert post(client, "/payments/", {"trip": "T-3", "amount": 10_001}).status_code == 402
    declined = post(client, "/payments/", {"trip": "T-3", "amount": 5, "fail": True})
    assert declined.status_code == 402 and "declined" in declined.json()["detail"]
    assert DemoBooking.objects.filter(trip="T-3").count() == 1


def test_bad_requests_and_the_list() -> None:
    client = Client()
    assert post(client, "/boat/", {"trip": "T-4", "amount": 1}).status_code == 404
    assert post(client, "/flight/", {"amount": 1}).status_code == 400
    assert post(client, "/flight/", {"trip": "T-4", "amount": "lots"}).status_code == 400
    assert post(client, "/flight/", {"trip": "T-4", "amount": -1}).status_code == 400
    bad_json = client.post(f"{TRIPS}/payments/", "[", content_type="application/json")
    assert bad_json.status_code == 400
    post(client, "/flight/", {"trip": "T-4", "amount": 1})
    post(client, "/hotel/", {"trip": "T-5", "amount": 2})
    listed = client.get(f"{TRIPS}/bookings/?trip=T-4").json()["bookings"]
    assert [(b["kind"], b["trip"]) for b in listed] == [("flight", "T-4")]
    assert len(client.get(f"{TRIPS}/bookings/").json()["bookings"]) == 2
