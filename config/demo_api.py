"""Tiny demo APIs that the examples call, so that they run out of the box.

Served under /demo-api/ when BATON_DEMO_API is on (the default outside production).

- The credit-check example: `credit-score/<customer id>/`. Customer ids starting with
  `unknown` get a 404; every other id a stable score.
- The trip-booking saga (processes/bpmn/trip_booking.bpmn): book a flight, a hotel and a car
  (`POST trips/<kind>/`), cancel a booking (`POST trips/bookings/<id>/cancel/`), pay
  (`POST trips/payments/`, declined with 402 over 10 000 or with `"fail": true`), and list a
  trip's bookings (`GET trips/bookings/?trip=...`). Bookings live in a table (DemoBooking), so
  every web process sees the same ones. Like a careful supplier, the API honours the
  `Idempotency-Key` header Baton sends with every service call: a call repeated with the
  same key (a worker died before it had the answer) books or cancels nothing more and gets
  the first answer again, while a second cancel with another key finds the booking cancelled
  already (409); a key used again for another request is refused (422).

The API has no login (it is off in production settings): what anyone may do with it is
bounded. The table keeps the latest MAX_BOOKINGS rows, and a slow cancellation waits at most
MAX_CANCEL_DELAY seconds, in at most SLOW_ANSWERS threads of a web process at once (the
others answer at once), so that slow answers cannot hold every thread of the server.
"""

import hashlib
import json
import threading
import time
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from engine.models import DemoBooking

# Payments above this are declined (402): the saga's failure path without any flag.
CARD_LIMIT = Decimal(10_000)
# A slow supplier answers at most this late (seconds), in at most this many threads of a web
# process at once: a slow answer holds its thread.
MAX_CANCEL_DELAY = 30.0
SLOW_ANSWERS = 2
_slow_answers = threading.BoundedSemaphore(SLOW_ANSWERS)
# Bookings and payments kept: a new one beyond this deletes the oldest.
MAX_BOOKINGS = 10_000
# The longest Idempotency-Key taken (longer ones are refused, not cut: two keys cut to the same
# prefix would share a booking).
MAX_KEY = 255
CENT = Decimal("0.01")  # DemoBooking.amount keeps two decimal places
BOOKABLE = (DemoBooking.Kind.FLIGHT, DemoBooking.Kind.HOTEL, DemoBooking.Kind.CAR)


def credit_score(request: HttpRequest, customer_id: str) -> JsonResponse:
    if customer_id.lower().startswith("unknown"):
        return JsonResponse({"detail": f"No customer {customer_id!r}."}, status=404)
    digest = int(hashlib.sha256(customer_id.encode()).hexdigest()[:8], 16)
    return JsonResponse({"customer_id": customer_id, "score": 300 + digest % 551})


# -- trips ------------------------------------------------------------------------------------


def _body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _problem(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


class _BadKey(Exception):
    pass


def _key(request: HttpRequest) -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > MAX_KEY:
        raise _BadKey
    return key or None


def _amount(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and 0 <= amount < Decimal(10) ** 10 else None


def _trip(body: dict[str, Any]) -> str | None:
    trip = body.get("trip")
    return trip.strip()[:255] if isinstance(trip, str) and trip.strip() else None


def booking_json(booking: DemoBooking) -> dict[str, Any]:
    return {
        "booking_id": str(booking.pk),
        "kind": booking.kind,
        "trip": booking.trip,
        "amount": float(booking.amount),
        "status": booking.status,
        "cancel_calls": booking.cancel_calls,
        "created_at": booking.created_at.isoformat(),
        "cancelled_at": booking.cancelled_at.isoformat() if booking.cancelled_at else None,
    }


class _KeyReused(Exception):
    pass


def _same_call(made: DemoBooking, kind: str, trip: str, amount: Decimal) -> DemoBooking:
    """The booking an earlier call with the same key made, if that call asked the same."""
    if (made.kind, made.trip, made.amount) != (kind, trip, amount.quantize(CENT)):
        raise _KeyReused
    return made


def _prune() -> None:
    """Keep the latest MAX_BOOKINGS rows: the API has no login, so its table is bounded."""
    excess = DemoBooking.objects.count() - MAX_BOOKINGS
    if excess > 0:
        oldest = DemoBooking.objects.order_by("created_at").values_list("pk", flat=True)[:excess]
        DemoBooking.objects.filter(pk__in=list(oldest)).delete()


def _create(kind: str, trip: str, amount: Decimal, key: str | None, **fields: Any) -> DemoBooking:
    """The booking made by the call with `key`, made now unless it was made before."""
    if key is not None:
        made = DemoBooking.objects.filter(booking_key=key).first()
        if made is not None:
            return _same_call(made, kind, trip, amount)
    try:
        with transaction.atomic():
            booking = DemoBooking.objects.create(
                kind=kind, trip=trip, amount=amount, booking_key=key, **fields
            )
    except IntegrityError:  # the same key at the same moment: the other call made it
        return _same_call(DemoBooking.objects.get(booking_key=key), kind, trip, amount)
    _prune()
    return booking


def _keyed(view: Any) -> Any:
    """Answer a bad or reused Idempotency-Key as a client error, whatever the view."""

    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        try:
            answer: JsonResponse = view(request, *args, **kwargs)
            return answer
        except _BadKey:
            return _problem(400, f"The Idempotency-Key is longer than {MAX_KEY} characters.")
        except _KeyReused:
            return _problem(422, "This Idempotency-Key was used for another request.")

    return wrapped


@csrf_exempt
@require_POST
@_keyed
def book(request: HttpRequest, kind: str) -> JsonResponse:
    if kind not in BOOKABLE:
        return _problem(404, f"Nothing called {kind!r} can be booked: flight, hotel or car.")
    body = _body(request)
    if body is None:
        return _problem(400, "Send a JSON object.")
    trip, amount = _trip(body), _amount(body.get("amount", 0))
    if trip is None or amount is None:
        return _problem(400, "Give the trip (text) and the amount (a number, 0 or more).")
    delay = body.get("slow_cancel", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        return _problem(400, "slow_cancel is a number of seconds.")
    booking = _create(
        kind, trip, amount, _key(request), cancel_delay=min(float(delay), MAX_CANCEL_DELAY)
    )
    return JsonResponse(booking_json(booking), status=201)


@csrf_exempt
@require_POST
@_keyed
def cancel_booking(request: HttpRequest, booking_id: uuid.UUID) -> JsonResponse:
    key = _key(request)
    with transaction.atomic():
        booking = DemoBooking.objects.select_for_update(no_key=True).filter(pk=booking_id).first()
        if booking is None or booking.kind not in BOOKABLE:
            return _problem(404, f"There is no booking {booking_id}.")
        booking.cancel_calls += 1
        replay = bool(key) and booking.status == DemoBooking.Status.CANCELLED
        replay = replay and key == booking.cancel_key
        first = booking.status == DemoBooking.Status.BOOKED
        if first:
            booking.status = DemoBooking.Status.CANCELLED
            booking.cancel_key = key or ""
            booking.cancelled_at = timezone.now()
        booking.save(update_fields=["cancel_calls", "status", "cancel_key", "cancelled_at"])
    if not first and not replay:
        return _problem(409, f"The {booking.kind} booking is cancelled already.")
    delayed = _answer_late(booking.cancel_delay) if first else 0.0
    return JsonResponse({**booking_json(booking), "answer_delayed_seconds": delayed})


def _answer_late(delay: float) -> float:
    """A slow supplier: cancelled, but the answer comes late (the caller may give up or die
    meanwhile and call again, with the same key). At most MAX_CANCEL_DELAY seconds, and only
    while fewer than SLOW_ANSWERS threads wait already; the seconds waited."""
    delay = min(delay, MAX_CANCEL_DELAY)
    if delay <= 0 or not _slow_answers.acquire(blocking=False):
        return 0.0
    try:
        # No database connection is held while it waits (Django opens one again if needed).
        connection.close()
        time.sleep(delay)
    finally:
        _slow_answers.release()
    return delay


@csrf_exempt
@require_POST
@_keyed
def pay(request: HttpRequest) -> JsonResponse:
    body = _body(request)
    if body is None:
        return _problem(400, "Send a JSON object.")
    trip, amount = _trip(body), _amount(body.get("amount"))
    if trip is None or amount is None:
        return _problem(400, "Give the trip (text) and the amount (a number, 0 or more).")
    if body.get("fail") is True or amount > CARD_LIMIT:
        return _problem(402, f"Card declined for {amount} (limit {CARD_LIMIT}).")
    payment = _create(
        DemoBooking.Kind.PAYMENT, trip, amount, _key(request), status=DemoBooking.Status.PAID
    )
    return JsonResponse({**booking_json(payment), "payment_id": str(payment.pk)}, status=201)


@require_GET
def bookings(request: HttpRequest) -> JsonResponse:
    """A trip's bookings and payments, oldest first (all trips': the latest 200)."""
    rows = DemoBooking.objects.order_by("-created_at")
    trip = request.GET.get("trip")
    if trip:
        rows = rows.filter(trip=trip)
    return JsonResponse({"bookings": [booking_json(b) for b in reversed(rows[:200])]})


urlpatterns = [
    path("credit-score/<str:customer_id>/", credit_score, name="demo-credit-score"),
    path("trips/bookings/", bookings, name="demo-trip-bookings"),
    path("trips/bookings/<uuid:booking_id>/cancel/", cancel_booking, name="demo-trip-cancel"),
    path("trips/payments/", pay, name="demo-trip-pay"),
    path("trips/<str:kind>/", book, name="demo-trip-book"),
]
