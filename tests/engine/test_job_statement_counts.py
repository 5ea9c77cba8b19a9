"""How many SQL statements a service job's run costs on the worker, from the claim to the next
job's queueing (issue 21): the advisory run lock and its release included, transaction control
(BEGIN, COMMIT) counted apart. The call itself is to a real HTTP API on 127.0.0.1."""

import os

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from engine.models import ServiceJob
from engine.services import start_instance
from engine.services.job_runs import execute_service_job
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import FakeApi, jobs_for_no_worker
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db(transaction=True)

MAX_STATEMENTS = 13
TRANSACTION_CONTROL = ("BEGIN", "COMMIT")


def _run_locks_held() -> int:
    """The advisory locks this test's own database session holds (a worker's run locks)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def _run_job(job: ServiceJob) -> list[str]:
    with CaptureQueriesContext(connection) as run:
        execute_service_job(str(job.id))
    statements = [q["sql"] for q in run.captured_queries]
    if os.environ.get("SHOW_SQL"):
        print(f"\n== job {job.element_id}: {len(statements)} statements")
        for sql in statements:
            print("  ", sql[:300])
    return [sql for sql in statements if sql not in TRANSACTION_CONTROL]


def test_a_job_that_succeeds_and_queues_the_next_takes_at_most_thirteen_statements(
    fake_api: FakeApi,
) -> None:
    tasks = [service_task(name, f"api + '/{name}'") for name in ("first", "second", "third")]
    deploy_document(sequence("three_calls", tasks), "three_calls.bpmn")
    with jobs_for_no_worker():
        instance = start_instance(key="three_calls", variables={"api": fake_api.base_url})
        first = ServiceJob.objects.get(instance=instance)
        _run_job(first)  # the definition's caches fill
        second = ServiceJob.objects.get(instance=instance, element_id="second")
        statements = _run_job(second)

    assert len(statements) <= MAX_STATEMENTS
    assert _run_locks_held() == 0  # the run lock was given back
    # The instance is locked before its job, in the one statement that locks both.
    (locking,) = [sql for sql in statements if "FOR NO KEY UPDATE" in sql]
    assert locking.endswith("FOR NO KEY UPDATE OF i, j")  # i: the instance, j: the job
    second.refresh_from_db()
    assert second.status == ServiceJob.Status.SUCCEEDED
    third = ServiceJob.objects.get(instance=instance, element_id="third")
    assert third.status == ServiceJob.Status.PENDING
    instance.refresh_from_db()
    assert instance.status == "running"  # its next job is pending
    assert list(instance.events.values_list("type", flat=True)).count("job_succeeded") == 2
