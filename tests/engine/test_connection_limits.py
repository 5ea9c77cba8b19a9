"""Named connections and their limits end to end: real Celery workers (2 processes, 2
children each), the real broker and Redis, Postgres, and an API on 127.0.0.1 that records
when each call arrived (DESIGN section 5)."""

import base64
import time
from collections.abc import Callable
from datetime import datetime
from uuid import uuid4

import pytest
from django.contrib.auth.models import Group, User

from engine.connectors import limits
from engine.connectors.connections import ConnectionConfig
from engine.models import Connection, ConnectionEvent, ProcessInstance, ServiceJob
from engine.services import start_instance
from engine.services.connections import create_connection, operate_breaker
from processes.services import deploy
from processes.validation import UploadedFile
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import TEST_SECRET, FakeApi, Reply, Seen, Workers, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def operator() -> User:
    user, _ = User.objects.get_or_create(username="olga_limits")
    group, _ = Group.objects.get_or_create(name="operators")
    user.groups.add(group)
    return user


def connection(api: FakeApi, **values: object) -> Connection:
    name = f"api-{uuid4().hex[:10]}"
    return create_connection(
        actor=operator(), values={"name": name, "base_url": api.base_url, **values}
    )


def deploy_calls(row: Connection, path: str, **params: str) -> str:
    """A process of one http task that calls `path` of the connection; its key."""
    key = f"calls_{uuid4().hex[:10]}"
    task = service_task("call", f'"{path}"', params={"connection": row.name, **params})
    xml = sequence(key, [task])
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)
    return key


def start(key: str, count: int) -> list[ProcessInstance]:
    return [start_instance(key=key, variables={}) for _ in range(count)]


def all_settled(key: str, count: int) -> Callable[[], bool]:
    def settled() -> bool:
        done = ProcessInstance.objects.filter(
            definition__key=key, status__in=("completed", "incident")
        )
        return done.count() == count

    return settled


def statuses(key: str) -> set[str]:
    return set(ProcessInstance.objects.filter(definition__key=key).values_list("status", flat=True))


def most_in_a_window(seen: list[Seen], seconds: float) -> int:
    """The most calls that arrived within any window of `seconds` (a sliding window)."""
    times = sorted(s.received_at for s in seen)
    most, first = 0, 0
    for last, arrived in enumerate(times):
        while arrived - times[first] >= seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


def wall_time(seen: Seen) -> float:
    """The arrival as wall-clock time (the stub records monotonic time)."""
    return seen.received_at + (time.time() - time.monotonic())


def test_300_jobs_never_exceed_20_per_second_and_all_complete(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    row = connection(fake_api, rate_limit=20, breaker_failures=50)
    key = deploy_calls(row, "/limited")
    # Held back while they are created, then let go at once: the limit alone paces them.
    operate_breaker(actor=operator(), name=row.name, action="open")
    start(key, 300)
    operate_breaker(actor=operator(), name=row.name, action="close")
    wait_until(all_settled(key, 300), timeout=90, what="300 rate-limited jobs", poll=0.5)
    assert statuses(key) == {"completed"}
    seen = fake_api.requests_to("/limited")
    assert len(seen) == 300
    # The limiter lets at most 20 through in any 1.1 s (RATE_MARGIN_SECONDS), so that the lag
    # between being let through and arriving may vary by 0.1 s. With the whole suite on two
    # cores that lag varies more, so arrivals are counted in 0.9 s windows: still 40 in a
    # moment if the limit were per fixed second or not shared, never more than 20 if it holds.
    assert most_in_a_window(seen, 0.9) <= 20
    jobs = ServiceJob.objects.filter(instance__definition__key=key)
    # Waiting used up no attempt: every job succeeded at its first.
    assert set(jobs.values_list("attempt", flat=True)) == {1}


def test_concurrency_cap_of_3_is_never_exceeded(celery_workers: Workers, fake_api: FakeApi) -> None:
    row = connection(fake_api, max_concurrent=3)
    fake_api.reply("/slow", Reply(delay=0.3))
    key = deploy_calls(row, "/slow")
    start(key, 12)
    wait_until(all_settled(key, 12), timeout=60, what="12 capped jobs")
    assert statuses(key) == {"completed"}
    seen = fake_api.requests_to("/slow")
    assert len(seen) == 12
    overlaps = [
        sum(1 for o in seen if o.received_at <= s.received_at < (o.answered_at or 0)) for s in seen
    ]
    assert max(overlaps) <= 3
    # All four worker children were busy at once with 12 jobs: the cap made some wait.
    assert ServiceJob.objects.filter(instance__definition__key=key, waits__gt=0).exists()


def test_503s_trip_the_breaker_jobs_wait_and_one_probe_closes_it(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    row = connection(fake_api, breaker_failures=3, breaker_cooldown_seconds=3)
    fake_api.reply("/down", Reply(503))
    key = deploy_calls(row, "/down")
    start(key, 10)
    opened = wait_until(
        lambda: ConnectionEvent.objects.filter(connection=row, type="breaker_opened").first(),
        what="the breaker to open",
        poll=0.05,
    )
    fake_api.reply("/down", Reply(200))  # the API is back; the breaker does not know yet
    wait_until(all_settled(key, 10), timeout=60, what="the jobs after the breaker closed")
    assert statuses(key) == {"completed"}  # no incident: waiting used up no attempt
    closed = ConnectionEvent.objects.get(connection=row, type="breaker_closed")
    assert ConnectionEvent.objects.filter(connection=row, type="breaker_opened").count() == 1
    seen = fake_api.requests_to("/down")
    # Calls already on their way when it opened may arrive a moment later; none after that
    # but the one probe, until the probe's success closed it.
    opened_at = datetime.timestamp(opened.created_at) + 0.2
    while_open = [s for s in seen if opened_at < wall_time(s) < closed.created_at.timestamp()]
    assert len(while_open) == 1
    failed = [s for s in seen if wall_time(s) <= opened_at]
    assert 3 <= len(failed) <= 6  # the 3 failures that opened it, and calls already under way
    assert len(seen) == len(failed) + 10  # then every job succeeded at its next call
    assert opened.actor is None and opened.payload == {"automatic": True}


def test_429_with_retry_after_pauses_and_slows_the_limiter(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    row = connection(fake_api, rate_limit=10)
    fake_api.reply("/busy", Reply(429, headers={"Retry-After": "2"}), Reply(200))
    key = deploy_calls(row, "/busy")
    start(key, 6)
    wait_until(all_settled(key, 6), timeout=60, what="the jobs after a 429")
    assert statuses(key) == {"completed"}
    first, *rest = fake_api.requests_to("/busy")
    assert len(rest) == 6  # the job that got the 429 called again
    # Nothing was sent before the Retry-After had passed (the stub's clock, with a margin
    # for the moment between the limiter's check and the arrival).
    assert min(s.received_at for s in rest) - first.received_at >= 1.9
    health = limits.health(ConnectionConfig.of(row))
    assert health["rate"]["slowed_after_429"] is True
    assert health["rate"]["effective_limit"] == 5
    jobs = ServiceJob.objects.filter(instance__definition__key=key)
    # The 429 used up no attempt; the job that got it, at least, waited.
    assert set(jobs.values_list("attempt", "status")) == {(1, "succeeded")}
    assert jobs.filter(waits__gt=0).exists()


def test_oauth2_token_is_fetched_once_and_refreshed_on_401(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    fake_api.reply(
        "/token",
        Reply(body={"access_token": "first-token-abcdef", "expires_in": 3600}),
        Reply(body={"access_token": "second-token-ghijkl", "expires_in": 3600}),
    )
    row = connection(
        fake_api,
        auth="oauth2",
        token_url=f"{fake_api.base_url}/token",
        username="baton-client",
        secret_name="CRM_TOKEN",
    )
    key = deploy_calls(row, "/data")
    fake_api.reply("/data", *[Reply(200)] * 5, Reply(401), Reply(200))
    start(key, 5)
    wait_until(all_settled(key, 5), what="the calls with the first token")
    [token_call] = fake_api.requests_to("/token")
    expected = base64.b64encode(f"baton-client:{TEST_SECRET}".encode()).decode()
    assert token_call.headers["Authorization"] == f"Basic {expected}"
    assert b"grant_type=client_credentials" in token_call.body
    calls = fake_api.requests_to("/data")
    assert {c.headers["Authorization"] for c in calls} == {"Bearer first-token-abcdef"}
    start(key, 1)  # answered 401 first: the token is fetched again and the call repeated
    wait_until(all_settled(key, 6), what="the call after the 401")
    assert statuses(key) == {"completed"}
    assert len(fake_api.requests_to("/token")) == 2
    *_, refused, repeated = fake_api.requests_to("/data")
    assert refused.headers["Authorization"] == "Bearer first-token-abcdef"
    assert repeated.headers["Authorization"] == "Bearer second-token-ghijkl"
    # Neither the secret nor a token is kept with the job.
    job = ServiceJob.objects.filter(instance__definition__key=key).last()
    assert job is not None and "token" not in str(job.parameters)


def test_open_breaker_throws_circuit_open_to_a_task_that_asks_for_it(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    row = connection(fake_api, breaker_failures=5)
    operate_breaker(actor=operator(), name=row.name, action="open")
    key = f"calls_{uuid4().hex[:10]}"
    task = service_task(
        "call", '"/never"', params={"connection": row.name, "on_circuit_open": "error"}
    )
    xml = sequence(key, [task], catch_error="CIRCUIT_OPEN")
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)
    [instance] = start(key, 1)
    wait_until(all_settled(key, 1), what="the instance to take the error path")
    instance.refresh_from_db()
    assert instance.status == "completed" and instance.variables.get("handled") is True
    assert fake_api.requests_to("/never") == []
    event = ConnectionEvent.objects.get(connection=row, type="breaker_open")
    assert event.actor is not None and event.actor.username == "olga_limits"


def test_a_plain_url_to_a_connections_host_shares_its_limits(
    celery_workers: Workers, fake_api: FakeApi
) -> None:
    row = connection(fake_api, breaker_failures=5)
    operate_breaker(actor=operator(), name=row.name, action="open")
    key = f"plain_{uuid4().hex[:10]}"
    xml = sequence(key, [service_task("call", f'"{fake_api.base_url}/plain"')])
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)
    start(key, 1)
    wait_until(
        lambda: ServiceJob.objects.filter(
            instance__definition__key=key, waiting_on=row.name, waits__gt=0
        ).exists(),
        what="the plain-URL job to wait for the open breaker",
    )
    assert fake_api.requests_to("/plain") == []
    operate_breaker(actor=operator(), name=row.name, action="close")
    wait_until(all_settled(key, 1), what="the job after the breaker closed", timeout=60)
    assert statuses(key) == {"completed"}
    assert len(fake_api.requests_to("/plain")) == 1
