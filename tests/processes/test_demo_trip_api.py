"""The demo trip API (config/demo_api.py) that the trip_booking example calls: bookings,
cancellations that honour Idempotency-Key, payments that can be declined, and the list."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from config import demo_api
from engine.models import DemoBooking
from tests.helpers import production_env

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


def test_a_key_used_again_for_another_request_is_refused_and_long_keys_are_not_cut() -> None:
    client = Client()
    first = post(client, "/flight/", {"trip": "T-6", "amount": 600.5}, key="k-1")
    assert first.status_code == 201
    # The same call again (an amount the table rounds the same way) is the same booking...
    again = post(client, "/flight/", {"trip": "T-6", "amount": "600.50"}, key="k-1")
    assert again.json()["booking_id"] == first.json()["booking_id"]
    # ...another call with that key gets no one else's booking.
    for path, body in [
        ("/hotel/", {"trip": "T-6", "amount": 600.5}),
        ("/flight/", {"trip": "T-7", "amount": 600.5}),
        ("/flight/", {"trip": "T-6", "amount": 1}),
        ("/payments/", {"trip": "T-6", "amount": 600.5}),
    ]:
        assert post(client, path, body, key="k-1").status_code == 422
    # Two long keys with one prefix: refused, not cut to the same key.
    long_key = "k" * 300
    assert post(client, "/flight/", {"trip": "T-8", "amount": 1}, key=long_key).status_code == 400
    booking = first.json()["booking_id"]
    assert post(client, f"/bookings/{booking}/cancel/", key=long_key).status_code == 400
    assert DemoBooking.objects.count() == 1
    assert DemoBooking.objects.get().status == "booked"


def test_the_table_keeps_the_latest_bookings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_api, "MAX_BOOKINGS", 3)
    client = Client()
    for number in range(5):
        assert post(client, "/car/", {"trip": f"T-{number}", "amount": 1}).status_code == 201
    assert sorted(DemoBooking.objects.values_list("trip", flat=True)) == ["T-2", "T-3", "T-4"]


def test_a_slow_cancellation_is_capped_and_holds_few_threads() -> None:
    client = Client()
    slow = post(client, "/car/", {"trip": "T-9", "amount": 1, "slow_cancel": 10**9})
    assert DemoBooking.objects.get().cancel_delay == demo_api.MAX_CANCEL_DELAY
    assert demo_api.MAX_CANCEL_DELAY <= 30
    # Every slow-answer slot taken (SLOW_ANSWERS requests waiting already): the cancellation
    # is made and answered at once.
    taken = [demo_api._slow_answers.acquire(blocking=False) for _ in range(demo_api.SLOW_ANSWERS)]
    try:
        assert all(taken)
        answer = post(client, f"/bookings/{slow.json()['booking_id']}/cancel/", key="c-1")
    finally:
        for _ in taken:
            demo_api._slow_answers.release()
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["answer_delayed_seconds"]) == ("cancelled", 0)


def test_production_settings_do_not_mount_the_demo_api(tmp_path: Path) -> None:
    """The demo API has no login: production serves it only when BATON_DEMO_API says so."""
    env = production_env(tmp_path)
    probe = (
        "import django; django.setup()\n"
        "from django.urls import Resolver404, resolve\n"
        "try:\n    resolve('/demo-api/trips/bookings/'); print('mounted')\n"
        "except Resolver404:\n    print('absent')\n"
    )

    def served(extra: dict[str, str]) -> str:
        result = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            env={**env, **extra},
            check=False,
            cwd=settings.BASE_DIR,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert served({}) == "absent"
    assert served({"BATON_DEMO_API": "1"}) == "mounted"  # asked for explicitly
