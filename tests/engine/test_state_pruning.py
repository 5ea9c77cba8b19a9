"""Instance state that stays bounded (issue 21): finished tasks that can no longer influence
a run leave the stored state (engine.bpmn.pruning), tasks are stored without what the
library repeats (engine.bpmn.stored_tasks), and runs go on exactly as before: loops end when
their gateway says, joins wait for their paths, resets find their data, and the element-run
history counts every run once."""

from collections import Counter
from typing import Any
from xml.sax.saxutils import escape

import pytest
from django.contrib.auth.models import User
from django.db import connection

from engine.bpmn.serialization import workflow_from_state
from engine.bpmn.stored_tasks import expand_all
from engine.bpmn.walks import ready_human_tasks
from engine.models import ElementRun, HumanTask, ProcessInstance
from engine.services import complete_human_task, reset_instance, start_instance
from engine.services.definition_cache import definition_specs
from processes.services import deploy
from tests.engine.event_diagrams import camunda, flows, timer, user_task
from tests.helpers import BPMN_HEADER, EXPENSE_FILE, deploy_document, upload_of


@pytest.fixture(autouse=True)
def _budget_for_long_runs(settings: Any) -> None:
    settings.BATON_STEP_LIMIT = 1_000_000
    settings.BATON_STEP_TIME_LIMIT_SECONDS = 600


def review_loop_bpmn(process_id: str, *, rounds: int) -> str:
    """start -> merge -> count (n = n + 1) -> review (user task) -> decide: back to merge
    while `n < rounds`, else to the end: four tasks a round."""
    done = escape(f"n >= {rounds}")
    body = f"""  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:exclusiveGateway id="merge" />
    <bpmn:scriptTask id="count" scriptFormat="python"><bpmn:script>n = n + 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:userTask id="review" camunda:candidateGroups="managers" />
    <bpmn:exclusiveGateway id="decide" default="f_again" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="merge" />
    <bpmn:sequenceFlow id="f2" sourceRef="merge" targetRef="count" />
    <bpmn:sequenceFlow id="f3" sourceRef="count" targetRef="review" />
    <bpmn:sequenceFlow id="f4" sourceRef="review" targetRef="decide" />
    <bpmn:sequenceFlow id="f_done" sourceRef="decide" targetRef="end">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{done}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_again" sourceRef="decide" targetRef="merge" />
  </bpmn:process>
</bpmn:definitions>
"""
    return BPMN_HEADER.format(process_id=process_id) + body


def parallel_review_loop_bpmn(process_id: str, *, rounds: int) -> str:
    """start -> merge -> fork -> (review, approve: user tasks | check: a script) -> join ->
    count (n = n + 1) -> decide: back to merge while `n < rounds`. Each round the check
    reaches the join at once, the review and the approval in two later operations."""
    done = escape(f"n >= {rounds}")
    body = f"""  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:exclusiveGateway id="merge" />
    <bpmn:parallelGateway id="fork" />
    <bpmn:userTask id="review" camunda:candidateGroups="managers" />
    <bpmn:userTask id="approve" camunda:candidateGroups="managers" />
    <bpmn:scriptTask id="check" scriptFormat="python"><bpmn:script>checked = n</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:parallelGateway id="join" />
    <bpmn:scriptTask id="count" scriptFormat="python"><bpmn:script>n = n + 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:exclusiveGateway id="decide" default="f_again" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="merge" />
    <bpmn:sequenceFlow id="f2" sourceRef="merge" targetRef="fork" />
    <bpmn:sequenceFlow id="f3" sourceRef="fork" targetRef="review" />
    <bpmn:sequenceFlow id="f4" sourceRef="fork" targetRef="check" />
    <bpmn:sequenceFlow id="f4a" sourceRef="fork" targetRef="approve" />
    <bpmn:sequenceFlow id="f5a" sourceRef="approve" targetRef="join" />
    <bpmn:sequenceFlow id="f5" sourceRef="review" targetRef="join" />
    <bpmn:sequenceFlow id="f6" sourceRef="check" targetRef="join" />
    <bpmn:sequenceFlow id="f7" sourceRef="join" targetRef="count" />
    <bpmn:sequenceFlow id="f8" sourceRef="count" targetRef="decide" />
    <bpmn:sequenceFlow id="f_done" sourceRef="decide" targetRef="end">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{done}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_again" sourceRef="decide" targetRef="merge" />
  </bpmn:process>
</bpmn:definitions>
"""
    return BPMN_HEADER.format(process_id=process_id) + body


def subprocess_loop_bpmn(process_id: str, *, rounds: int) -> str:
    """start -> merge -> sub (an embedded subprocess: s_start -> review -> count -> s_end)
    -> decide: back to merge while `n < rounds`. Each round runs a new subprocess."""
    done = escape(f"n >= {rounds}")
    body = f"""  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:exclusiveGateway id="merge" />
    <bpmn:subProcess id="sub">
      <bpmn:startEvent id="s_start" />
      <bpmn:userTask id="review" camunda:candidateGroups="managers" />
      <bpmn:scriptTask id="count" scriptFormat="python"><bpmn:script>n = n + 1</bpmn:script>
      </bpmn:scriptTask>
      <bpmn:endEvent id="s_end" />
      <bpmn:sequenceFlow id="s1" sourceRef="s_start" targetRef="review" />
      <bpmn:sequenceFlow id="s2" sourceRef="review" targetRef="count" />
      <bpmn:sequenceFlow id="s3" sourceRef="count" targetRef="s_end" />
    </bpmn:subProcess>
    <bpmn:exclusiveGateway id="decide" default="f_again" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="merge" />
    <bpmn:sequenceFlow id="f2" sourceRef="merge" targetRef="sub" />
    <bpmn:sequenceFlow id="f3" sourceRef="sub" targetRef="decide" />
    <bpmn:sequenceFlow id="f_done" sourceRef="decide" targetRef="end">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{done}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_again" sourceRef="decide" targetRef="merge" />
  </bpmn:process>
</bpmn:definitions>
"""
    return BPMN_HEADER.format(process_id=process_id) + body


def open_review(instance: ProcessInstance) -> HumanTask | None:
    return instance.human_tasks.filter(status__in=HumanTask.ACTIVE_STATUSES).first()


def stored_bytes(instance: ProcessInstance) -> int:
    """What Postgres stores for the instance's state and variables (bytes of their text)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT octet_length(state::text) + octet_length(variables::text) "
            "FROM engine_processinstance WHERE id = %s",
            [instance.pk],
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def stored_tasks(instance: ProcessInstance) -> int:
    instance.refresh_from_db()
    return len(instance.state["tasks"])


def complete_rounds(instance: ProcessInstance, user: User, first: int, last: int) -> None:
    """Complete the review of rounds `first`..`last`, checking each round's `n` before."""
    for done in range(first, last + 1):
        instance.refresh_from_db()
        assert instance.status == ProcessInstance.Status.WAITING, f"round {done}"
        assert instance.variables["n"] == done, f"round {done}"
        task = open_review(instance)
        assert task is not None, f"no review waits in round {done}"
        complete_human_task(task_id=task.pk, user=user, variables={})


def test_a_loop_s_state_stays_the_same_size_and_the_loop_ends_when_its_gateway_says(
    db: Any, approver: User
) -> None:
    rounds = 160
    deploy_document(review_loop_bpmn("bounded_loop", rounds=rounds))
    instance = start_instance(key="bounded_loop", variables={"n": 0})

    complete_rounds(instance, approver, 1, 40)
    at_40 = (stored_tasks(instance), stored_bytes(instance))
    complete_rounds(instance, approver, 41, 80)
    at_80 = (stored_tasks(instance), stored_bytes(instance))
    complete_rounds(instance, approver, 81, rounds - 1)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING  # one round to go
    complete_rounds(instance, approver, rounds, rounds)

    assert at_80[0] == at_40[0]  # the same tasks stay: the run's own and the latest history
    assert abs(at_80[1] - at_40[1]) <= 0.02 * at_40[1]
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables == {"n": rounds}
    assert instance.human_tasks.filter(status=HumanTask.Status.COMPLETED).count() == rounds


@pytest.mark.slow
def test_a_loop_runs_a_thousand_rounds_in_a_bounded_state(db: Any, approver: User) -> None:
    rounds = 1000
    deploy_document(review_loop_bpmn("thousand_rounds", rounds=rounds))
    instance = start_instance(key="thousand_rounds", variables={"n": 0})

    complete_rounds(instance, approver, 1, 100)
    at_100 = stored_bytes(instance)
    complete_rounds(instance, approver, 101, rounds - 1)
    at_999 = stored_bytes(instance)
    complete_rounds(instance, approver, rounds, rounds)

    assert abs(at_999 - at_100) <= 0.02 * at_100
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables == {"n": rounds}


def test_the_history_counts_every_run_once_when_tasks_leave_the_state(
    db: Any, approver: User, settings: Any
) -> None:
    settings.BATON_STATE_HISTORY_SIZE = 0  # only what must stay stays
    rounds = 12
    deploy_document(review_loop_bpmn("history_loop", rounds=rounds))
    instance = start_instance(key="history_loop", variables={"n": 0})

    complete_rounds(instance, approver, 1, rounds)

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    finished = ElementRun.objects.filter(instance=instance).exclude(element_type="Process")
    assert Counter(finished.values_list("element_id", flat=True)) == {
        "start": 1,
        "merge": rounds,
        "count": rounds,
        "review": rounds,
        "decide": rounds,
        "end": 1,
    }
    assert not finished.filter(ended_at=None).exists()
    assert set(finished.values_list("outcome", flat=True)) == {"completed"}


def test_a_reset_after_tasks_left_the_state_takes_the_data_of_the_run_before(
    db: Any, approver: User, make_user: Any, settings: Any
) -> None:
    settings.BATON_STATE_HISTORY_SIZE = 0
    operator = make_user("olga_operator", "operators")
    deploy_document(review_loop_bpmn("reset_loop", rounds=100))
    instance = start_instance(key="reset_loop", variables={"n": 0})
    complete_rounds(instance, approver, 1, 30)  # round 31's review waits, with n = 31

    # `count` runs again from the data its latest run started with (n = 30), not the
    # start's (n = 0): its parent stays in the state with it.
    reset_instance(instance_id=instance.pk, actor=operator, element_id="count")

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING
    assert instance.variables["n"] == 31
    complete_rounds(instance, approver, 31, 32)
    instance.refresh_from_db()
    assert instance.variables["n"] == 33


def test_a_join_in_a_loop_counts_the_paths_that_arrived_after_tasks_left_the_state(
    db: Any, approver: User, settings: Any
) -> None:
    settings.BATON_STATE_HISTORY_SIZE = 0
    rounds = 10
    deploy_document(parallel_review_loop_bpmn("join_loop", rounds=rounds))
    instance = start_instance(key="join_loop", variables={"n": 0})

    for done in range(1, rounds + 1):
        for element_id in ("review", "approve"):
            instance.refresh_from_db()
            # The join waits for the paths still to come, and counts those that arrived in
            # earlier operations (the check's, cancelled there, has left the tree otherwise).
            assert instance.status == ProcessInstance.Status.WAITING, f"round {done}"
            assert instance.variables["n"] == done - 1
            task = instance.human_tasks.get(
                element_id=element_id, status__in=HumanTask.ACTIVE_STATUSES
            )
            complete_human_task(task_id=task.pk, user=approver, variables={})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["n"] == rounds
    assert instance.human_tasks.filter(status=HumanTask.Status.COMPLETED).count() == 2 * rounds


def test_the_subprocesses_of_earlier_rounds_leave_the_state(
    db: Any, approver: User, settings: Any
) -> None:
    settings.BATON_STATE_HISTORY_SIZE = 0
    rounds = 8
    deploy_document(subprocess_loop_bpmn("subprocess_loop", rounds=rounds))
    instance = start_instance(key="subprocess_loop", variables={"n": 0})

    subprocesses = []
    for done in range(1, rounds + 1):
        instance.refresh_from_db()
        assert instance.status == ProcessInstance.Status.WAITING, f"round {done}"
        assert instance.variables["n"] == done - 1
        subprocesses.append(len(instance.state["subprocesses"]))
        task = open_review(instance)
        assert task is not None, f"no review waits in round {done}"
        complete_human_task(task_id=task.pk, user=approver, variables={})

    # The running round's subprocess, and the latest finished one (the latest run of `sub`).
    assert max(subprocesses) <= 2
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["n"] == rounds


def test_a_reset_to_an_activity_with_a_boundary_timer_sets_the_timer_again(
    db: Any, approver: User, make_user: Any, settings: Any
) -> None:
    # approve (a timer boundary event escalates after a day) -> confirm -> end. Once approve
    # completed its timer was cancelled: it stays in the state beside approve anyway, since
    # a reset to approve resets its boundary events too.
    settings.BATON_STATE_HISTORY_SIZE = 0
    operator = make_user("olga_operator", "operators")
    body = "\n".join(
        [
            '    <bpmn:startEvent id="start" />',
            user_task("approve"),
            '    <bpmn:boundaryEvent id="overdue" attachedToRef="approve">'
            f"{timer('timeDuration', 'P1D')}</bpmn:boundaryEvent>",
            user_task("escalate", "directors"),
            user_task("confirm"),
            '    <bpmn:endEvent id="end" />',
            '    <bpmn:endEvent id="end_escalated" />',
            flows(
                ("start", "approve"),
                ("approve", "confirm"),
                ("confirm", "end"),
                ("overdue", "escalate"),
                ("escalate", "end_escalated"),
            ),
        ]
    )
    deploy_document(camunda("boundary_reset", body))
    instance = start_instance(key="boundary_reset", variables={})
    assert instance.timers.filter(fired=False).count() == 1
    approval = instance.human_tasks.get(element_id="approve")
    complete_human_task(task_id=approval.pk, user=approver, variables={})
    assert not instance.timers.filter(fired=False).exists()

    reset_instance(instance_id=instance.pk, actor=operator, element_id="approve")

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING
    assert instance.timers.filter(fired=False, element_id="overdue").count() == 1
    again = instance.human_tasks.get(element_id="approve", status__in=HumanTask.ACTIVE_STATUSES)
    assert again.pk != approval.pk


def test_a_completed_expense_approval_is_stored_in_at_most_4_kb(db: Any, approver: User) -> None:
    deploy(name="expense", files=[upload_of(EXPENSE_FILE)], actor=None)
    instance = start_instance(
        key="expense_approval",
        variables={"amount": 250, "description": "Team dinner", "requester": "alice"},
    )
    task = open_review(instance)
    assert task is not None
    complete_human_task(
        task_id=task.pk, user=approver, variables={"decision": "approve", "comment": "fine"}
    )

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["outcome"] == "approved"
    assert stored_bytes(instance) <= 4096


def test_a_state_stored_with_every_field_of_the_library_loads_as_before(
    db: Any, approver: User
) -> None:
    deploy_document(review_loop_bpmn("full_records", rounds=3))
    instance = start_instance(key="full_records", variables={"n": 0})
    complete_rounds(instance, approver, 1, 1)
    instance.refresh_from_db()
    compact_state = instance.state
    # What states stored before compact records look like: every field of every record.
    instance.state = {**compact_state, "tasks": expand_all(compact_state["tasks"])}
    assert all("id" in record and "parent" in record for record in instance.state["tasks"].values())
    instance.save(update_fields=["state"])

    spec, subprocess_specs = definition_specs(instance.definition_id)
    workflow = workflow_from_state(
        instance.definition.dialect, instance.state, spec, subprocess_specs
    )
    assert len(workflow.tasks) == len(compact_state["tasks"])
    assert [task.data["n"] for task in ready_human_tasks(workflow).values()] == [2]

    complete_rounds(instance, approver, 2, 3)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables == {"n": 3}
