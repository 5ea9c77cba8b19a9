"""Two timer beats at once never fire one timer twice: 100 timers due at the same moment,
fired by two concurrent threads and by two concurrent processes, against real Postgres."""

import datetime
import os
import subprocess
import sys
import threading

import pytest
from django.db import connection

import engine.clock
from engine.models import HumanTask, InstanceEvent, ProcessInstance, Timer
from engine.services import start_instance
from engine.services.timers import fire_due_timers, fire_timer
from tests.engine import event_diagrams
from tests.engine.service_fixtures import BASE_DIR, database_url, wait_until
from tests.engine.test_messages import deploy_xml

pytestmark = pytest.mark.django_db(transaction=True)
TIMERS = 100


def start_waiting_instances(value: str) -> list[ProcessInstance]:
    deploy_xml(event_diagrams.wait_for_timer(value))
    return [start_instance(key="waits") for _ in range(TIMERS)]


def assert_each_fired_once(instances: list[ProcessInstance]) -> None:
    assert Timer.objects.filter(fired=False).count() == 0
    assert Timer.objects.filter(fired=True).count() == TIMERS
    fired_events = InstanceEvent.objects.filter(type="timer_fired")
    assert fired_events.count() == TIMERS
    assert fired_events.values("instance").distinct().count() == TIMERS
    assert HumanTask.objects.filter(element_id="after").count() == TIMERS
    assert HumanTask.objects.values("instance").distinct().count() == TIMERS
    for instance in instances:
        instance.refresh_from_db()
        assert instance.status == ProcessInstance.Status.WAITING
        assert instance.human_tasks.count() == 1


def in_thread(barrier: threading.Barrier, results: list, errors: list, action) -> None:
    try:
        barrier.wait()
        results.append(action())
    except Exception as exc:  # reported by the test
        errors.append(exc)
    finally:
        connection.close()


def run_together(*actions) -> list:
    barrier = threading.Barrier(len(actions), timeout=60)
    results: list = []
    errors: list = []
    threads = [
        threading.Thread(target=in_thread, args=(barrier, results, errors, action))
        for action in actions
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == [], errors
    return results


def test_two_threads_fire_100_due_timers_once_each(clock):
    instances = start_waiting_instances("PT1M")
    clock.advance(datetime.timedelta(minutes=2))
    fired = run_together(
        lambda: fire_due_timers(batch=5, time_budget=60),
        lambda: fire_due_timers(batch=5, time_budget=60),
    )
    assert sum(fired) == TIMERS
    assert_each_fired_once(instances)


def test_two_threads_racing_for_the_same_timer_fire_it_once(clock):
    deploy_xml(event_diagrams.wait_for_timer("PT1M"))
    start_instance(key="waits")
    clock.advance(datetime.timedelta(minutes=2))
    timer_id = Timer.objects.get().pk
    results = run_together(lambda: fire_timer(timer_id), lambda: fire_timer(timer_id))
    assert sorted(results) == [False, True]
    assert HumanTask.objects.count() == 1
    assert InstanceEvent.objects.filter(type="timer_fired").count() == 1


# Each process says it is ready (a file of its own), then waits for the go file, so that
# both fire at once.
FIRER = """
import pathlib, sys, time
import django
django.setup()
from engine.services.timers import fire_due_timers
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.01)
print(fire_due_timers(batch=5, time_budget=60))
"""


@pytest.mark.slow
def test_two_beat_processes_fire_100_due_timers_once_each(tmp_path):
    instances = start_waiting_instances("PT1S")  # real time: the processes have their own clock
    latest = Timer.objects.order_by("-due_at").first()
    assert latest is not None
    wait_until(lambda: engine.clock.now() > latest.due_at, timeout=30, what="every timer to be due")
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
    }
    go, ready = tmp_path / "go", [tmp_path / f"ready{n}" for n in (1, 2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FIRER, str(flag), str(go)],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    wait_until(
        lambda: (
            all(flag.exists() for flag in ready) or any(p.poll() is not None for p in processes)
        ),
        timeout=60,
        what="both processes to be ready",
    )
    go.touch()
    outputs = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    counts = [int(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(counts) == TIMERS, counts
    print("fired per process:", counts)
    assert_each_fired_once(instances)
