"""Multi-instance activities (issue 17): parallel and sequential, over a cardinality or a
collection, in the three dialects Baton reads; user tasks in the inbox, scripts, subprocesses
and service tasks run by the worker path; completion conditions and deploy-time refusals."""

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from engine.connectors import ConnectorCall, connector
from engine.models import HumanTask, InstanceEvent, ProcessInstance, ServiceJob
from engine.selectors.operations import instance_diagram
from engine.services import complete_human_task, start_instance
from engine.services.job_runs import execute_service_job
from processes.services import deploy
from processes.validation import DeploymentInvalid, UploadedFile
from tests.engine.service_fixtures import jobs_for_no_worker
from tests.helpers import line_containing

pytestmark = pytest.mark.django_db

NAMESPACES = {
    "camunda": 'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"',
    "zeebe": 'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"',
    "spiff": 'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"',
}


def diagram(process_id: str, activity: str, *, dialect: str = "camunda", after: str = "") -> str:
    """start -> activity `work` -> [after: user task `after`] -> end."""
    nodes = ["start", "work", *(["after"] if after else []), "end"]
    flows = "".join(
        f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}" />\n'
        for i, (a, b) in enumerate(itertools.pairwise(nodes))
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        f'{NAMESPACES[dialect]} id="d_{process_id}" targetNamespace="http://bpmn.io/schema/bpmn">\n'
        f'<bpmn:process id="{process_id}" isExecutable="true">\n'
        '<bpmn:startEvent id="start" />\n'
        f"{activity}\n{after}\n"
        '<bpmn:endEvent id="end" />\n'
        f"{flows}</bpmn:process>\n</bpmn:definitions>\n"
    )


def form(*fields: str) -> str:
    inner = "".join(f'<camunda:formField id="{f}" type="boolean" />' for f in fields)
    return f"<camunda:formData>{inner}</camunda:formData>"


def user_task(loop: str, *, assignee: str = "${approver}", extensions: str = "") -> str:
    ext = f"<bpmn:extensionElements>{extensions}</bpmn:extensionElements>" if extensions else ""
    who = f' camunda:assignee="{assignee}"' if assignee else ' camunda:candidateGroups="managers"'
    return f'<bpmn:userTask id="work" name="Approve"{who}>{ext}{loop}</bpmn:userTask>'


AFTER = '<bpmn:userTask id="after" camunda:candidateGroups="managers" />'


def deploy_xml(key: str, xml: str) -> None:
    deploy(name=key, files=[UploadedFile(f"{key}.bpmn", xml.encode())], actor=None)


def open_rows(instance: ProcessInstance) -> list[HumanTask]:
    return list(
        instance.human_tasks.filter(status__in=HumanTask.ACTIVE_STATUSES).order_by(
            "created_at", "pk"
        )
    )


def complete_for(instance: ProcessInstance, assignee: str, user: User, **data: Any) -> None:
    row = instance.human_tasks.get(assignee=assignee, status__in=HumanTask.ACTIVE_STATUSES)
    complete_human_task(task_id=row.pk, user=user, variables=data)


@pytest.fixture
def boss(make_user) -> User:
    user: User = make_user("mi_boss", "managers")
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return user


# -- user tasks: the inbox ----------------------------------------------------------------------

CAMUNDA_PARALLEL = (
    '<bpmn:multiInstanceLoopCharacteristics camunda:collection="approvers" '
    'camunda:elementVariable="approver" />'
)


def test_parallel_approvers_get_one_inbox_task_each_and_their_variables_stay_local(boss):
    deploy_xml(
        "mi_c7",
        diagram("mi_c7", user_task(CAMUNDA_PARALLEL, extensions=form("approved")), after=AFTER),
    )
    instance = start_instance(key="mi_c7", variables={"approvers": ["ann", "bob", "cat"]})

    rows = open_rows(instance)
    assert [(r.element_id, r.assignee, r.status) for r in rows] == [
        ("work", "ann", "claimed"),
        ("work", "bob", "claimed"),
        ("work", "cat", "claimed"),
    ]
    assert len({r.spiff_task_id for r in rows}) == 3
    complete_for(instance, "cat", boss, approved=True)
    complete_for(instance, "ann", boss, approved=True)
    assert [r.assignee for r in open_rows(instance)] == ["bob"]
    complete_for(instance, "bob", boss, approved=False)

    instance.refresh_from_db()
    assert [r.element_id for r in open_rows(instance)] == ["after"]
    # Camunda 7 has no output collection: what the instances set is merged; the element
    # variable and loopCounter were the instances' own.
    assert "approved" in instance.variables
    for local in ("approver", "loopCounter", "nrOfInstances"):
        assert local not in instance.variables
    assert InstanceEvent.objects.filter(instance=instance, type="task_completed").count() == 3


ZEEBE_TWO_OF_THREE = (
    "<bpmn:multiInstanceLoopCharacteristics><bpmn:extensionElements>"
    '<zeebe:loopCharacteristics inputCollection="= approvers" inputElement="approver" '
    'outputCollection="results" outputElement="= approved" />'
    "</bpmn:extensionElements>"
    "<bpmn:completionCondition>= count(results[item = true]) &gt;= 2"
    "</bpmn:completionCondition></bpmn:multiInstanceLoopCharacteristics>"
)


def test_outputs_come_in_index_order_and_two_of_three_cancels_the_third_task(boss):
    deploy_xml(
        "mi_two_of_three",
        diagram(
            "mi_two_of_three",
            user_task(ZEEBE_TWO_OF_THREE, extensions=form("approved")),
            dialect="zeebe",
            after=AFTER,
        ),
    )
    instance = start_instance(key="mi_two_of_three", variables={"approvers": ["ann", "bob", "cat"]})
    assert [r.assignee for r in open_rows(instance)] == ["ann", "bob", "cat"]

    complete_for(instance, "cat", boss, approved=True)
    complete_for(instance, "ann", boss, approved=False)
    instance.refresh_from_db()
    assert instance.variables["results"] == [False, None, True]
    complete_for(instance, "bob", boss, approved=True)

    instance.refresh_from_db()
    assert instance.variables["results"] == [False, True, True]
    assert [r.element_id for r in open_rows(instance)] == ["after"]

    # Now with two approvals first: the third approver's task disappears from the inbox.
    second = start_instance(key="mi_two_of_three", variables={"approvers": ["ann", "bob", "cat"]})
    complete_for(second, "bob", boss, approved=True)
    complete_for(second, "ann", boss, approved=True)
    second.refresh_from_db()
    assert second.variables["results"] == [True, True, None]
    cat = second.human_tasks.get(assignee="cat")
    assert cat.status == HumanTask.Status.CANCELLED
    assert [r.element_id for r in open_rows(second)] == ["after"]
    assert InstanceEvent.objects.filter(
        instance=second, type="task_cancelled", element_id="work"
    ).exists()


def test_nr_of_completed_instances_ends_the_loop_as_camunda_says(boss):
    loop = (
        '<bpmn:multiInstanceLoopCharacteristics camunda:collection="${approvers}" '
        'camunda:elementVariable="approver"><bpmn:completionCondition>'
        "${nrOfCompletedInstances &gt;= 2 and nrOfInstances == 3 and nrOfActiveInstances == 1}"
        "</bpmn:completionCondition></bpmn:multiInstanceLoopCharacteristics>"
    )
    deploy_xml("mi_nr", diagram("mi_nr", user_task(loop, extensions=form("approved"))))
    instance = start_instance(key="mi_nr", variables={"approvers": ["ann", "bob", "cat"]})
    complete_for(instance, "ann", boss, approved=True)
    complete_for(instance, "bob", boss, approved=False)
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.human_tasks.get(assignee="cat").status == HumanTask.Status.CANCELLED


def test_sequential_cardinality_opens_one_task_at_a_time_with_its_loop_counter(boss):
    loop = (
        '<bpmn:multiInstanceLoopCharacteristics isSequential="true">'
        "<bpmn:loopCardinality>${rounds}</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    deploy_xml(
        "mi_seq",
        diagram("mi_seq", user_task(loop, assignee="${'r' + loopCounter}", extensions=form())),
    )
    instance = start_instance(key="mi_seq", variables={"rounds": 3})
    for expected in ("r0", "r1", "r2"):
        [row] = open_rows(instance)
        assert row.assignee == expected
        complete_human_task(task_id=row.pk, user=boss, variables={})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.human_tasks.filter(status="completed").count() == 3


def test_spiffarena_input_and_output_data_items(boss):
    loop = (
        '<bpmn:multiInstanceLoopCharacteristics isSequential="true">'
        "<bpmn:loopDataInputRef>approvers</bpmn:loopDataInputRef>"
        "<bpmn:loopDataOutputRef>decisions</bpmn:loopDataOutputRef>"
        '<bpmn:inputDataItem id="approver" name="approver" />'
        '<bpmn:outputDataItem id="decision" name="decision" />'
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    task = (
        '<bpmn:userTask id="work" name="Decide"><bpmn:extensionElements>'
        "<spiffworkflow:properties>"
        '<spiffworkflow:property name="acceptUndeclaredVariables" value="true" />'
        "</spiffworkflow:properties></bpmn:extensionElements>"
        f"{loop}</bpmn:userTask>"
    )
    deploy_xml("mi_spiff", diagram("mi_spiff", task, dialect="spiff"))
    instance = start_instance(key="mi_spiff", variables={"approvers": ["ann", "bob"]}, actor=boss)
    for answer in ("yes", "no"):
        [row] = open_rows(instance)
        complete_human_task(task_id=row.pk, user=boss, variables={"decision": answer})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["decisions"] == ["yes", "no"]
    assert "approver" not in instance.variables


# -- scripts, subprocesses, service tasks -------------------------------------------------------


def test_parallel_script_task_collects_each_result_by_index():
    task = (
        '<bpmn:scriptTask id="work" scriptFormat="python">'
        '<bpmn:extensionElements><zeebe:loopCharacteristics inputCollection="= numbers" '
        'inputElement="n" outputCollection="squares" outputElement="= square" />'
        "</bpmn:extensionElements><bpmn:multiInstanceLoopCharacteristics />"
        "<bpmn:script>square = n * n</bpmn:script></bpmn:scriptTask>"
    )
    deploy_xml("mi_script", diagram("mi_script", task, dialect="zeebe"))
    instance = start_instance(key="mi_script", variables={"numbers": [1, 2, 3, 4]})
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["squares"] == [1, 4, 9, 16]
    assert "square" not in instance.variables and "n" not in instance.variables


def test_sequential_subprocess_runs_once_per_item(boss):
    task = (
        '<bpmn:subProcess id="work">'
        '<bpmn:multiInstanceLoopCharacteristics isSequential="true">'
        "<bpmn:loopDataInputRef>orders</bpmn:loopDataInputRef>"
        "<bpmn:loopDataOutputRef>totals</bpmn:loopDataOutputRef>"
        '<bpmn:inputDataItem id="order" name="order" />'
        '<bpmn:outputDataItem id="total" name="total" />'
        "</bpmn:multiInstanceLoopCharacteristics>"
        '<bpmn:startEvent id="s" />'
        '<bpmn:scriptTask id="price" scriptFormat="python">'
        '<bpmn:script>total = order["qty"] * order["price"]</bpmn:script></bpmn:scriptTask>'
        '<bpmn:userTask id="check" camunda:candidateGroups="managers" />'
        '<bpmn:endEvent id="e" />'
        '<bpmn:sequenceFlow id="g1" sourceRef="s" targetRef="price" />'
        '<bpmn:sequenceFlow id="g2" sourceRef="price" targetRef="check" />'
        '<bpmn:sequenceFlow id="g3" sourceRef="check" targetRef="e" />'
        "</bpmn:subProcess>"
    )
    deploy_xml("mi_sub", diagram("mi_sub", task))
    orders = [{"qty": 2, "price": 5}, {"qty": 1, "price": 7}, {"qty": 3, "price": 1}]
    instance = start_instance(key="mi_sub", variables={"orders": orders})
    for _ in orders:
        [row] = open_rows(instance)
        assert row.element_id == "check"
        complete_human_task(task_id=row.pk, user=boss, variables={})
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["totals"] == [10, 7, 3]


@connector("mi.lookup")
def lookup(parameters: dict[str, Any], call: ConnectorCall) -> Any:
    """The test's connector: answers with the customer it was asked about, upper-cased."""
    return {"name": str(parameters["customer"]).upper()}


@pytest.fixture
def no_worker() -> Iterator[None]:
    with jobs_for_no_worker():
        yield


@pytest.mark.django_db(transaction=True)
def test_parallel_service_task_runs_one_job_per_item_on_the_worker_path(no_worker):
    task = (
        '<bpmn:serviceTask id="work" camunda:type="external" camunda:topic="mi.lookup">'
        "<bpmn:extensionElements><camunda:inputOutput>"
        '<camunda:inputParameter name="customer">${customer}</camunda:inputParameter>'
        '<camunda:outputParameter name="found">${result["name"]}</camunda:outputParameter>'
        "</camunda:inputOutput></bpmn:extensionElements>"
        "<bpmn:multiInstanceLoopCharacteristics>"
        "<bpmn:loopDataInputRef>customers</bpmn:loopDataInputRef>"
        "<bpmn:loopDataOutputRef>names</bpmn:loopDataOutputRef>"
        '<bpmn:inputDataItem id="customer" name="customer" />'
        '<bpmn:outputDataItem id="found" name="found" />'
        "</bpmn:multiInstanceLoopCharacteristics></bpmn:serviceTask>"
    )
    deploy_xml("mi_svc", diagram("mi_svc", task))
    instance = start_instance(key="mi_svc", variables={"customers": ["ann", "bob", "cat"]})
    jobs = list(ServiceJob.objects.filter(instance=instance).order_by("created_at", "pk"))
    assert len(jobs) == 3
    assert sorted(job.parameters["customer"] for job in jobs) == ["ann", "bob", "cat"]
    for job in reversed(jobs):
        execute_service_job(str(job.id))
    instance.refresh_from_db()
    assert instance.status == ProcessInstance.Status.COMPLETED, instance.incident
    assert instance.variables["names"] == ["ANN", "BOB", "CAT"]


# -- what operators see -------------------------------------------------------------------------


def test_the_diagram_markers_count_instances(boss):
    loop = (
        "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>3</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    deploy_xml("mi_markers", diagram("mi_markers", user_task(loop, assignee="", extensions=form())))
    instance = start_instance(key="mi_markers")
    first = open_rows(instance)[0]
    complete_human_task(task_id=first.pk, user=boss, variables={})
    instance.refresh_from_db()
    markers = instance_diagram(instance)
    assert markers["active"] == ["work"]
    assert markers["completed"] == {"start": 1, "work": 1}
    assert markers["instances"] == {"work": {"total": 3, "completed": 1, "active": 2}}
    for row in open_rows(instance):
        complete_human_task(task_id=row.pk, user=boss, variables={})
    instance.refresh_from_db()
    done = instance_diagram(instance)
    assert done["completed"] == {"start": 1, "work": 3, "end": 1}
    assert done["instances"] == {}


# -- refused at deploy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loop", "dialect", "message"),
    [
        (
            "<bpmn:multiInstanceLoopCharacteristics />",
            "camunda",
            "needs a loop cardinality or an input collection",
        ),
        (
            "<bpmn:multiInstanceLoopCharacteristics><bpmn:extensionElements>"
            '<zeebe:loopCharacteristics inputCollection="= filter(items, x > 1)" '
            'inputElement="x" /></bpmn:extensionElements>'
            "</bpmn:multiInstanceLoopCharacteristics>",
            "zeebe",
            "The input collection '= filter(items, x > 1)' of the multi-instance activity "
            "'work' cannot be read",
        ),
        (
            '<bpmn:multiInstanceLoopCharacteristics camunda:collection="${items +}" '
            'camunda:elementVariable="x" />',
            "camunda",
            "The expression ${items +} cannot be read",
        ),
        (
            '<bpmn:multiInstanceLoopCharacteristics behavior="One" oneBehaviorEventRef="ev">'
            "<bpmn:loopCardinality>2</bpmn:loopCardinality>"
            "</bpmn:multiInstanceLoopCharacteristics>",
            "camunda",
            "Baton throws no multi-instance behavior events",
        ),
    ],
    ids=["nothing-to-loop-over", "feel-expression", "broken-python", "behavior-event"],
)
def test_a_loop_that_cannot_be_run_is_refused_naming_the_element_and_line(loop, dialect, message):
    xml = diagram("mi_bad", user_task(loop, assignee=""), dialect=dialect)
    with pytest.raises(DeploymentInvalid) as refused:
        deploy_xml("mi_bad", xml)
    [problem] = refused.value.problems
    assert message in problem.message
    assert problem.element_id == "work"
    assert problem.line == line_containing(xml, '<bpmn:userTask id="work"')


def test_behavior_all_and_none_without_events_run():
    loop = (
        '<bpmn:multiInstanceLoopCharacteristics behavior="None">'
        "<bpmn:loopCardinality>2</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics>"
    )
    task = (
        f'<bpmn:scriptTask id="work" scriptFormat="python">{loop}'
        "<bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>"
    )
    deploy_xml("mi_none", diagram("mi_none", task))
    instance = start_instance(key="mi_none")
    assert instance.status == ProcessInstance.Status.COMPLETED


# -- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loop", "variables", "error"),
    [
        (
            "<bpmn:multiInstanceLoopCharacteristics>"
            "<bpmn:loopCardinality>rounds</bpmn:loopCardinality>"
            "</bpmn:multiInstanceLoopCharacteristics>",
            {"rounds": "three"},
            "is 'three', not a whole number",
        ),
        (
            '<bpmn:multiInstanceLoopCharacteristics camunda:collection="approvers" '
            'camunda:elementVariable="approver" />',
            {"approvers": 7},
            "is int, not a list",
        ),
        (
            "<bpmn:multiInstanceLoopCharacteristics>"
            "<bpmn:loopCardinality>2</bpmn:loopCardinality>"
            "<bpmn:completionCondition>missing &gt; 1</bpmn:completionCondition>"
            "</bpmn:multiInstanceLoopCharacteristics>",
            {},
            "The completion condition 'missing > 1'",
        ),
    ],
    ids=["cardinality-not-a-number", "collection-not-a-list", "condition-fails"],
)
def test_a_loop_failing_at_run_time_is_an_incident_naming_it(loop, variables, error):
    task = (
        f'<bpmn:scriptTask id="work" scriptFormat="python">{loop}'
        "<bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>"
    )
    deploy_xml("mi_fails", diagram("mi_fails", task))
    instance = start_instance(key="mi_fails", variables=variables)
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert instance.incident["element_id"] == "work"
    assert error in instance.incident["error"]


# -- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loop", "variables", "source"),
    [
        (
            "<bpmn:multiInstanceLoopCharacteristics>"
            "<bpmn:loopCardinality>rounds</bpmn:loopCardinality>"
            "</bpmn:multiInstanceLoopCharacteristics>",
            {"rounds": 4},
            "The loop cardinality 'rounds'",
        ),
        (
            '<bpmn:multiInstanceLoopCharacteristics camunda:collection="items" '
            'camunda:elementVariable="item" isSequential="true" />',
            {"items": {"a": 1, "b": 2, "c": 3, "d": 4}},
            "The input collection 'items'",
        ),
    ],
    ids=["cardinality", "collection"],
)
def test_more_instances_than_the_limit_is_an_incident_naming_the_activity_and_limit(
    settings, loop, variables, source
):
    settings.BATON_MAX_MULTI_INSTANCES = 3
    task = (
        f'<bpmn:scriptTask id="work" scriptFormat="python">{loop}'
        "<bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>"
    )
    deploy_xml("mi_limit", diagram("mi_limit", task))
    instance = start_instance(key="mi_limit", variables=variables)
    assert instance.status == ProcessInstance.Status.INCIDENT
    assert instance.incident is not None
    assert instance.incident["element_id"] == "work"
    error = instance.incident["error"]
    assert source in error and "'work'" in error
    assert "4 instances; the limit is 3 (BATON_MAX_MULTI_INSTANCES)" in error


def test_as_many_instances_as_the_limit_run(settings):
    settings.BATON_MAX_MULTI_INSTANCES = 3
    task = (
        '<bpmn:scriptTask id="work" scriptFormat="python">'
        "<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>3</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics><bpmn:script>x = 1</bpmn:script>"
        "</bpmn:scriptTask>"
    )
    deploy_xml("mi_at_limit", diagram("mi_at_limit", task))
    instance = start_instance(key="mi_at_limit")
    assert instance.status == ProcessInstance.Status.COMPLETED


def test_thousands_of_parallel_instances_collect_in_order():
    """Each merge removes one finished instance, not a walk over all of them (quadratic)."""
    task = (
        '<bpmn:scriptTask id="work" scriptFormat="python">'
        "<bpmn:multiInstanceLoopCharacteristics>"
        "<bpmn:loopCardinality>3000</bpmn:loopCardinality>"
        "<bpmn:loopDataOutputRef>counters</bpmn:loopDataOutputRef>"
        '<bpmn:outputDataItem id="seen" name="seen" />'
        "</bpmn:multiInstanceLoopCharacteristics><bpmn:script>seen = loopCounter</bpmn:script>"
        "</bpmn:scriptTask>"
    )
    deploy_xml("mi_many", diagram("mi_many", task))
    instance = start_instance(key="mi_many")
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["counters"] == list(range(3000))


def test_a_juel_completion_condition_and_cardinality_are_read_as_juel():
    """Finding 2.2: `${...}` in a completion condition or a cardinality is JUEL (&&, ==)."""
    task = (
        '<bpmn:scriptTask id="work" scriptFormat="python">'
        '<bpmn:multiInstanceLoopCharacteristics isSequential="true">'
        "<bpmn:loopCardinality>${rounds + 1}</bpmn:loopCardinality>"
        "<bpmn:completionCondition>${nrOfCompletedInstances &gt;= 2 &amp;&amp; x == 1}"
        "</bpmn:completionCondition></bpmn:multiInstanceLoopCharacteristics>"
        "<bpmn:script>x = 1\ncount = count + 1</bpmn:script></bpmn:scriptTask>"
    )
    deploy_xml("mi_juel", diagram("mi_juel", task))
    instance = start_instance(key="mi_juel", variables={"rounds": 4, "count": 0})
    assert instance.status == ProcessInstance.Status.COMPLETED
    assert instance.variables["count"] == 2
