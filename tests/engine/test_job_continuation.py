"""A worker that finished a job runs the instance's next job itself when it is due now
(services.job_runs.run_service_jobs): a sequence of service tasks does not go through the
broker between its steps; a fan-out's other branches are handed over at once, and after
BATON_JOB_CONTINUE_SECONDS every next job is handed over. Run in this process against a queue
no worker reads, so the messages left in it are what was handed over."""

import pytest
from django.test import override_settings

from engine.models import ProcessInstance, ServiceJob
from engine.queueing import jobs_waiting_in_queue
from engine.services import start_instance
from engine.services.job_runs import run_service_jobs
from tests.engine.service_diagrams import HEADER, sequence, service_task
from tests.engine.service_fixtures import FakeApi, Reply, jobs_for_no_worker
from tests.helpers import deploy_document

pytestmark = pytest.mark.django_db(transaction=True)
# Long enough for any machine: the tests of continuing must not depend on its speed.
CONTINUE_LONG = override_settings(BATON_JOB_CONTINUE_SECONDS=600)


def _calls(*names: str) -> list[str]:
    return [service_task(name, f"api + '/{name}'") for name in names]


def _first_then_fork() -> str:
    """start -> first -> fork -> (left, right) -> join -> end."""
    flows = [
        ("start", "first"),
        ("first", "fork"),
        ("fork", "left"),
        ("fork", "right"),
        ("left", "join"),
        ("right", "join"),
        ("join", "end"),
    ]
    return (
        HEADER
        + '  <bpmn:process id="first_then_fork" isExecutable="true">\n'
        + '    <bpmn:startEvent id="start" />\n'
        + "".join(_calls("first", "left", "right"))
        + '    <bpmn:parallelGateway id="fork" />\n    <bpmn:parallelGateway id="join" />\n'
        + '    <bpmn:endEvent id="end" />\n'
        + "".join(
            f'    <bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}" />\n'
            for i, (a, b) in enumerate(flows)
        )
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )


def _started(key: str, api: FakeApi) -> ProcessInstance:
    instance = start_instance(key=key, variables={"api": api.base_url})
    assert jobs_waiting_in_queue() == 1  # the start hands its job over, as always
    return instance


def _first_message_taken(instance: ProcessInstance) -> str:
    """The job a worker got the message of (the message is left in the queue here)."""
    return str(ServiceJob.objects.get(instance=instance, status=ServiceJob.Status.PENDING).id)


@CONTINUE_LONG
def test_a_sequence_runs_to_its_end_on_one_message(fake_api: FakeApi) -> None:
    deploy_document(sequence("four_calls", _calls("a", "b", "c", "d")), "four_calls.bpmn")
    with jobs_for_no_worker():
        instance = _started("four_calls", fake_api)
        run_service_jobs(_first_message_taken(instance))

        instance.refresh_from_db()
        assert instance.status == "completed"
        assert [seen.path for seen in fake_api.seen] == ["/a", "/b", "/c", "/d"]
        assert set(instance.jobs.values_list("status", flat=True)) == {"succeeded"}
        assert jobs_waiting_in_queue() == 1  # only the start's message: none between steps


@CONTINUE_LONG
def test_a_fan_out_continues_one_branch_and_hands_over_the_other(fake_api: FakeApi) -> None:
    deploy_document(_first_then_fork(), "first_then_fork.bpmn")
    with jobs_for_no_worker():
        instance = _started("first_then_fork", fake_api)
        run_service_jobs(_first_message_taken(instance))

        jobs = dict(instance.jobs.values_list("element_id", "status"))
        assert jobs["first"] == "succeeded"
        # One branch ran here; the other waits for a worker, its message in the queue.
        assert sorted([jobs["left"], jobs["right"]]) == ["pending", "succeeded"]
        assert jobs_waiting_in_queue() == 2


@override_settings(BATON_JOB_CONTINUE_SECONDS=0)
def test_after_the_continue_time_the_next_job_is_handed_over(fake_api: FakeApi) -> None:
    deploy_document(sequence("two_calls", _calls("a", "b")), "two_calls.bpmn")
    with jobs_for_no_worker():
        instance = _started("two_calls", fake_api)
        run_service_jobs(_first_message_taken(instance))

        jobs = dict(instance.jobs.values_list("element_id", "status"))
        assert jobs == {"a": "succeeded", "b": "pending"}
        assert jobs_waiting_in_queue() == 2


@CONTINUE_LONG
def test_a_retry_waits_for_its_time_on_the_broker_not_here(fake_api: FakeApi) -> None:
    fake_api.reply("/a", Reply(status=503))
    deploy_document(sequence("flaky_call", _calls("a")), "flaky_call.bpmn")
    with jobs_for_no_worker():
        instance = _started("flaky_call", fake_api)
        run_service_jobs(_first_message_taken(instance))

        job = instance.jobs.get()
        assert (job.status, job.attempt) == ("pending", 1)
        assert [seen.path for seen in fake_api.seen] == ["/a"]  # not called again here
        assert jobs_waiting_in_queue() == 2  # the retry's message, due later
