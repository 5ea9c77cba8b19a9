"""Long runs (issue 17): a loop whose task tree grows deeper than the library's iteration
limit (1,000 tasks from the root) runs on and completes exactly when its condition says,
with its data."""

import itertools
from xml.sax.saxutils import escape

import pytest

from engine.models import HumanTask, ProcessInstance
from engine.services import complete_human_task, reset_instance, start_instance
from tests.helpers import BPMN_HEADER, deploy_document


@pytest.fixture(autouse=True)
def _budget_for_long_runs(settings):
    """These loops end, but run longer in one operation than the default step budget allows
    (engine.bpmn.budget: 10,000 steps, 10 s), which a deployment raises for such processes."""
    settings.BATON_STEP_LIMIT = 1_000_000
    settings.BATON_STEP_TIME_LIMIT_SECONDS = 600


def loop_bpmn(
    process_id: str, *, rounds: int, with_review: bool, reviewed_at_end: bool = False
) -> str:
    """start -> reset_counter -> merge -> count (counter += 1) -> [review] -> decide: back to
    merge while `counter < rounds`, else to the end (through `final_review` with
    `reviewed_at_end`). Each round adds 3 (4 with review) tasks in depth."""
    nodes = ["start", "reset_counter", "merge", "count"]
    nodes += [*(["review"] if with_review else []), "decide"]
    flows = [
        f'<bpmn:sequenceFlow id="f_{source}" sourceRef="{source}" targetRef="{target}" />'
        for source, target in itertools.pairwise(nodes)
    ]
    review = (
        '<bpmn:userTask id="review" name="Review" camunda:candidateGroups="managers" />'
        if with_review
        else ""
    )
    done = escape(f"counter >= {rounds}")
    last = "final_review" if reviewed_at_end else "end"
    final_review = (
        '<bpmn:userTask id="final_review" camunda:candidateGroups="managers" />'
        '<bpmn:sequenceFlow id="f_final" sourceRef="final_review" targetRef="end" />'
        if reviewed_at_end
        else ""
    )
    body = f"""  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:scriptTask id="reset_counter" scriptFormat="python">
      <bpmn:script>counter = 0</bpmn:script></bpmn:scriptTask>
    <bpmn:exclusiveGateway id="merge" />
    <bpmn:scriptTask id="count" scriptFormat="python">
      <bpmn:script>counter = counter + 1</bpmn:script></bpmn:scriptTask>
    {review}
    <bpmn:exclusiveGateway id="decide" default="f_again" />
    <bpmn:endEvent id="end" />
    {final_review}
    {"".join(flows)}
    <bpmn:sequenceFlow id="f_done" sourceRef="decide" targetRef="{last}">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{done}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_again" sourceRef="decide" targetRef="merge" />
  </bpmn:process>
</bpmn:definitions>
"""
    return BPMN_HEADER.format(process_id=process_id) + body


def open_review(instance: ProcessInstance) -> HumanTask | None:
    return instance.human_tasks.filter(status__in=HumanTask.ACTIVE_STATUSES).first()


@pytest.mark.slow
def test_a_loop_with_a_user_task_runs_past_the_depth_limit(db, approver):
    # 4 tasks a round: the library's limit of 1,000 is reached in round 250, after which the
    # instance used to be reported completed. Every completion loads and stores the whole
    # (growing) state, so a few rounds past it are enough.
    rounds = 260
    deploy_document(loop_bpmn("review_loop", rounds=rounds, with_review=True))
    instance = start_instance(key="review_loop", variables={"counter": 0})

    for done in range(1, rounds + 1):
        instance.refresh_from_db()
        assert instance.status == ProcessInstance.Status.WAITING, f"round {done}"
        assert instance.variables["counter"] == done
        task = open_review(instance)
        assert task is not None, f"no review waits in round {done}"
        complete_human_task(task_id=task.pk, user=approver, variables={})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["counter"] == rounds
    assert open_review(instance) is None
    assert instance.human_tasks.filter(status=HumanTask.Status.COMPLETED).count() == rounds


@pytest.mark.slow
def test_a_script_loop_of_5000_rounds_completes_when_its_condition_says(db):
    rounds = 5000
    deploy_document(loop_bpmn("long_loop", rounds=rounds, with_review=False))
    instance = start_instance(key="long_loop", variables={"counter": 0})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables == {"counter": rounds}


@pytest.mark.parametrize("rounds", [1, 2, 400])
def test_a_script_loop_stops_exactly_at_its_condition(db, rounds):
    # 400 rounds of 3 tasks reach depth 1,200, past the library's limit.
    deploy_document(loop_bpmn(f"loop_{rounds}", rounds=rounds, with_review=False))
    instance = start_instance(key=f"loop_{rounds}", variables={"counter": 0})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables == {"counter": rounds}


def loop_beside_a_short_branch_bpmn(process_id: str, *, rounds: int) -> str:
    """start -> fork: one branch loops `rounds` times (merge -> count -> decide), the other
    ends at once. The process ends when both have."""
    done = escape(f"counter >= {rounds}")
    body = f"""  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:parallelGateway id="fork" />
    <bpmn:exclusiveGateway id="merge" />
    <bpmn:scriptTask id="count" scriptFormat="python">
      <bpmn:script>counter = counter + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:exclusiveGateway id="decide" default="f_again" />
    <bpmn:endEvent id="loop_end" />
    <bpmn:endEvent id="short_end" />
    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="fork" />
    <bpmn:sequenceFlow id="f_loop" sourceRef="fork" targetRef="merge" />
    <bpmn:sequenceFlow id="f_short" sourceRef="fork" targetRef="short_end" />
    <bpmn:sequenceFlow id="f_merge" sourceRef="merge" targetRef="count" />
    <bpmn:sequenceFlow id="f_count" sourceRef="count" targetRef="decide" />
    <bpmn:sequenceFlow id="f_done" sourceRef="decide" targetRef="loop_end">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{done}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_again" sourceRef="decide" targetRef="merge" />
  </bpmn:process>
</bpmn:definitions>
"""
    return BPMN_HEADER.format(process_id=process_id) + body


def test_a_finished_branch_does_not_end_the_process_while_a_long_loop_runs(db):
    # The process's end waits for every branch; it looked for unfinished ones only down to
    # the library's depth limit, so it ended the process while the loop still ran.
    rounds = 400
    deploy_document(loop_beside_a_short_branch_bpmn("loop_and_short", rounds=rounds))
    instance = start_instance(key="loop_and_short", variables={"counter": 0})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables == {"counter": rounds}


def test_a_reset_to_before_a_long_loop_runs_the_loop_again(db, make_user):
    # The reset removes the 1,200 tasks of the loop below the reset task at once.
    operator = make_user("olga_operator", "operators")
    rounds = 400
    deploy_document(loop_bpmn("loop_reset", rounds=rounds, with_review=False, reviewed_at_end=True))
    instance = start_instance(key="loop_reset", variables={"counter": 0})
    first_review = open_review(instance)
    assert first_review is not None

    reset_instance(instance_id=instance.pk, actor=operator, element_id="reset_counter")

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.WAITING
    assert instance.variables["counter"] == rounds
    first_review.refresh_from_db()
    assert first_review.status == HumanTask.Status.CANCELLED
    again = open_review(instance)
    assert again is not None and again.pk != first_review.pk


def parallel_rounds_bpmn(process_id: str, *, rounds: int) -> str:
    """start -> merge -> fork -> (left: count, right: nothing) -> join -> decide: back to
    merge while `counter < rounds`. Each round adds 6 tasks in depth, a join among them."""
    done = escape(f"counter >= {rounds}")
    body = f"""  <bpmn:process id="{process_id}" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:exclusiveGateway id="merge" />
    <bpmn:parallelGateway id="fork" />
    <bpmn:scriptTask id="count" scriptFormat="python">
      <bpmn:script>counter = counter + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:parallelGateway id="join" />
    <bpmn:exclusiveGateway id="decide" default="f_again" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="merge" />
    <bpmn:sequenceFlow id="f_merge" sourceRef="merge" targetRef="fork" />
    <bpmn:sequenceFlow id="f_left" sourceRef="fork" targetRef="count" />
    <bpmn:sequenceFlow id="f_count" sourceRef="count" targetRef="join" />
    <bpmn:sequenceFlow id="f_right" sourceRef="fork" targetRef="join" />
    <bpmn:sequenceFlow id="f_join" sourceRef="join" targetRef="decide" />
    <bpmn:sequenceFlow id="f_done" sourceRef="decide" targetRef="end">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{done}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_again" sourceRef="decide" targetRef="merge" />
  </bpmn:process>
</bpmn:definitions>
"""
    return BPMN_HEADER.format(process_id=process_id) + body


@pytest.mark.slow
def test_a_parallel_join_inside_a_long_loop_joins_every_round(db):
    # The join compares itself with its earlier rounds through their ancestry, which the
    # library checks with one recursion per level: past about 1,000 levels it failed.
    rounds = 200
    deploy_document(parallel_rounds_bpmn("parallel_rounds", rounds=rounds))
    instance = start_instance(key="parallel_rounds", variables={"counter": 0})

    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables == {"counter": rounds}
