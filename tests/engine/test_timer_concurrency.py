"""Two timer beats at once never fire one timer twice: 100 timers due at the same moment,
fired by two concurrent threads and by two concurrent processes, against real Postgres."""
import datetime
import os
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection

from engine import clock
from engine.models import HumanTask, InstanceEvent, ProcessInstance, Timer
from engine.services import start_instance
from engine.services.timers import fire_due_timers, fire_timer
from tests.engine import event_diagrams
from tests.engine.service_fixtures import BASE_DIR, database_url
from tests.engine.test_messages import deploy_xml

pytestmark = pytest.mark.django_db(transaction=True)
TIMERS = 100


@pytest.fixture(autouse=True)
def real_time_afterwards():
    yield
    clock.reset()


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
    threads = [threading.Thread(target=in_thread, args=(barrier, results, errors, action))
               for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == [], errors
    return results


def test_two_threads_fire_100_due_timers_once_each():
    instances = start_waiting_instances("PT1M")
    clock.advance(datetime.timedelta(minutes=2))
    fired = run_together(lambda: fire_due_timers(batch=5, time_budget=60),
                         lambda: fire_due_timers(batch=5, time_budget=60))
    assert sum(fired) == TIMERS
    assert_each_fired_once(instances)


def test_two_threads_racing_for_the_same_timer_fire_it_once():
    deploy_xml(event_diagrams.wait_for_timer("PT1M"))
    start_instance(key="waits")
    clock.advance(datetime.timedelta(minutes=2))
    timer_id = Timer.objects.get().pk
    results = run_together(lambda: fire_timer(timer_id), lambda: fire_timer(timer_id))
    assert sorted(results) == [False, True]
    assert HumanTask.objects.count() == 1
    assert InstanceEvent.objects.filter(type="timer_fired").count() == 1


FIRER = """
import os, sys, time
import django
django.setup()
from engine.services.timers import fire_due_timers
start_at = float(sys.argv[1])
time.sleep(max(0.0, start_at - time.time()))
print(fire_due_timers(batch=5, time_budget=60))
"""


@pytest.mark.slow
def test_two_beat_processes_fire_100_due_timers_once_each():
    instances = start_waiting_instances("PT1S")  # real time: the processes have their own clock
    latest_due = Timer.objects.order_by("-due_at").first().due_at
    time.sleep(max(0.0, (latest_due - clock.now()).total_seconds()) + 0.1)
    env = {**os.environ, "DATABASE_URL": database_url(),
           "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    start_at = str(time.time() + 4)  # both are set up by then and start together
    processes = [subprocess.Popen([sys.executable, "-c", FIRER, start_at], cwd=BASE_DIR, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    counts = [int(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(counts) == TIMERS, counts
    print("fired per process:", counts)
    assert_each_fired_once(instances)
