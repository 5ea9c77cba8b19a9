"""Diagrams the conformance suite of issue 17 answered with a 500: element ids the workflow
library uses for its own task specs (`Start`, `End`, ...) and ad-hoc subprocesses. Each
deploys and runs through the REST API, or is refused at deploy with a message naming the
element."""

import pytest

from engine.models import HumanTask, InstanceEvent, ProcessInstance
from processes.models import ProcessDefinition
from tests.helpers import BPMN_HEADER, line_containing

pytestmark = pytest.mark.django_db
DEPLOYMENTS = "/api/v1/deployments/"


def document(process_id: str, body: str) -> str:
    return (
        BPMN_HEADER.format(process_id=process_id)
        + f'  <bpmn:process id="{process_id}" isExecutable="true">\n'
        + body
        + "  </bpmn:process>\n</bpmn:definitions>\n"
    )


def user_task(element_id: str, *fields: str) -> str:
    """A user task for managers whose form has boolean fields `fields`."""
    form = "".join(f'<camunda:formField id="{name}" type="boolean" />' for name in fields)
    return (
        f'    <bpmn:userTask id="{element_id}" name="{element_id}" '
        'camunda:candidateGroups="managers"><bpmn:extensionElements><camunda:formData>'
        f"{form}</camunda:formData></bpmn:extensionElements></bpmn:userTask>\n"
    )


def flow(source: str, target: str) -> str:
    return (
        f'    <bpmn:sequenceFlow id="flow_{source}_{target}" sourceRef="{source}" '
        f'targetRef="{target}" />\n'
    )


@pytest.fixture
def designer_client(api_client_for, designer):
    return api_client_for(designer)


@pytest.fixture
def approver_client(api_client_for, approver):
    return api_client_for(approver)


def deploy(client, xml: str):
    return client.post(DEPLOYMENTS, {"name": "Issue 17", "bpmn_xml": xml}, format="json")


def start(client, key: str, variables: dict | None = None) -> dict:
    response = client.post(
        f"/api/v1/definitions/{key}/start/", {"variables": variables or {}}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def complete(client, task_id: str, variables: dict | None = None) -> dict:
    response = client.post(
        f"/api/v1/tasks/{task_id}/complete/", {"variables": variables or {}}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def instance(client, instance_id: str) -> dict:
    response = client.get(f"/api/v1/instances/{instance_id}/")
    assert response.status_code == 200, response.content
    return response.json()


# -- element ids the workflow library reserves ------------------------------------------------


RESERVED_IDS = document(
    "reserved_ids",
    '    <bpmn:startEvent id="Start" />\n'
    + user_task("Root", "again")
    + '    <bpmn:exclusiveGateway id="StartEventSplit" default="flow_StartEventSplit_End" />\n'
    + user_task("StartEventJoin")
    + '    <bpmn:endEvent id="End" />\n'
    + flow("Start", "Root")
    + flow("Root", "StartEventSplit")
    + '    <bpmn:sequenceFlow id="flow_again" sourceRef="StartEventSplit" '
    'targetRef="StartEventJoin"><bpmn:conditionExpression>again</bpmn:conditionExpression>'
    "</bpmn:sequenceFlow>\n" + flow("StartEventJoin", "Root") + flow("StartEventSplit", "End"),
)


def test_elements_named_like_the_library_s_own_task_specs_run(designer_client, approver_client):
    assert deploy(designer_client, RESERVED_IDS).status_code == 201
    started = start(approver_client, "reserved_ids")
    assert started["status"] == "waiting"
    assert [t["element_id"] for t in started["open_tasks"]] == ["Root"]

    complete(approver_client, started["open_tasks"][0]["id"], {"again": True})
    looped = instance(approver_client, started["id"])
    assert [t["element_id"] for t in looped["open_tasks"]] == ["StartEventJoin"]
    complete(approver_client, looped["open_tasks"][0]["id"])
    back = instance(approver_client, started["id"])
    assert [t["element_id"] for t in back["open_tasks"]] == ["Root"]
    complete(approver_client, back["open_tasks"][0]["id"], {"again": False})

    done = instance(approver_client, started["id"])
    assert done["status"] == "completed"
    assert ProcessInstance.objects.get().status == ProcessInstance.Status.COMPLETED
    assert list(HumanTask.objects.order_by("created_at").values_list("element_id", flat=True)) == [
        "Root",
        "StartEventJoin",
        "Root",
    ]
    history = approver_client.get(f"/api/v1/instances/{started['id']}/history/").json()
    assert history["count"] == InstanceEvent.objects.count()


def test_a_start_event_named_start_in_a_subprocess_runs(designer_client, approver_client):
    xml = document(
        "reserved_in_subprocess",
        '    <bpmn:startEvent id="begin" />\n'
        '    <bpmn:subProcess id="inner">\n'
        '      <bpmn:startEvent id="Start" />\n'
        + user_task("work")
        + '      <bpmn:endEvent id="End" />\n'
        + flow("Start", "work")
        + flow("work", "End")
        + "    </bpmn:subProcess>\n"
        '    <bpmn:endEvent id="finish" />\n' + flow("begin", "inner") + flow("inner", "finish"),
    )
    assert deploy(designer_client, xml).status_code == 201
    started = start(approver_client, "reserved_in_subprocess")
    assert [t["element_id"] for t in started["open_tasks"]] == ["work"]
    complete(approver_client, started["open_tasks"][0]["id"])
    assert instance(approver_client, started["id"])["status"] == "completed"


def test_a_multi_instance_task_named_end_runs_once_per_item(designer_client, approver_client):
    xml = document(
        "reserved_multi_instance",
        '    <bpmn:startEvent id="begin" />\n'
        '    <bpmn:userTask id="End" name="Review" camunda:candidateGroups="managers">'
        '<bpmn:multiInstanceLoopCharacteristics isSequential="false">'
        "<bpmn:loopCardinality>2</bpmn:loopCardinality>"
        "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>\n"
        '    <bpmn:endEvent id="finish" />\n' + flow("begin", "End") + flow("End", "finish"),
    )
    assert deploy(designer_client, xml).status_code == 201
    started = start(approver_client, "reserved_multi_instance")
    assert [t["element_id"] for t in started["open_tasks"]] == ["End", "End"]
    for task in started["open_tasks"]:
        complete(approver_client, task["id"])
    assert instance(approver_client, started["id"])["status"] == "completed"
    # The task specs of the element (the multi-instance one and the one it repeats) know it.
    stored = ProcessDefinition.objects.get().spec["spec"]["task_specs"]
    assert {name: s["bpmn_id"] for name, s in stored.items() if s["bpmn_id"]} == {
        "begin": "begin",
        "End [element]": "End",
        "End [element] [child]": "End",
        "finish": "finish",
    }


# -- ad-hoc subprocesses ----------------------------------------------------------------------


def ad_hoc(process_id: str, condition: str | None, ordering: str = "") -> str:
    attributes = f' ordering="{ordering}"' if ordering else ""
    return document(
        process_id,
        '    <bpmn:startEvent id="begin" />\n'
        f'    <bpmn:adHocSubProcess id="checks" name="Checks"{attributes}>\n'
        + user_task("check_id", "id_ok", "enough")
        + user_task("check_address", "address_ok")
        + (condition if condition is not None else "")
        + "    </bpmn:adHocSubProcess>\n"
        + user_task("after")
        + '    <bpmn:endEvent id="finish" />\n'
        + flow("begin", "checks")
        + flow("checks", "after")
        + flow("after", "finish"),
    )


@pytest.mark.parametrize(
    "condition",
    [
        None,
        "<bpmn:completionCondition />",
        '<bpmn:completionCondition xsi:type="bpmn:tFormalExpression">  </bpmn:completionCondition>',
    ],
    ids=["absent", "empty", "blank"],
)
def test_an_ad_hoc_subprocess_without_a_condition_ends_when_its_activities_are_done(
    designer_client, approver_client, condition
):
    assert deploy(designer_client, ad_hoc("ad_hoc_all", condition)).status_code == 201
    started = start(approver_client, "ad_hoc_all")
    assert started["status"] == "waiting"
    tasks = {t["element_id"]: t["id"] for t in started["open_tasks"]}
    assert tasks.keys() == {"check_id", "check_address"}

    complete(approver_client, tasks["check_address"], {"address_ok": True})
    halfway = instance(approver_client, started["id"])
    assert [t["element_id"] for t in halfway["open_tasks"]] == ["check_id"]
    complete(approver_client, tasks["check_id"], {"id_ok": True})
    after = instance(approver_client, started["id"])
    assert [t["element_id"] for t in after["open_tasks"]] == ["after"]
    assert after["variables"]["address_ok"] is True and after["variables"]["id_ok"] is True


def test_an_ad_hoc_subprocess_ends_when_its_condition_holds(designer_client, approver_client):
    condition = (
        '<bpmn:completionCondition xsi:type="bpmn:tFormalExpression">'
        "enough</bpmn:completionCondition>\n"
    )
    assert deploy(designer_client, ad_hoc("ad_hoc_early", condition)).status_code == 201
    started = start(approver_client, "ad_hoc_early", {"enough": False})
    tasks = {t["element_id"]: t["id"] for t in started["open_tasks"]}
    assert tasks.keys() == {"check_id", "check_address"}

    complete(approver_client, tasks["check_id"], {"enough": True})
    after = instance(approver_client, started["id"])
    assert [t["element_id"] for t in after["open_tasks"]] == ["after"]
    assert HumanTask.objects.get(element_id="check_address").status == HumanTask.Status.CANCELLED


def test_a_sequential_ad_hoc_subprocess_is_refused_at_deploy(designer_client):
    xml = ad_hoc("ad_hoc_sequential", None, ordering="Sequential")
    response = deploy(designer_client, xml)
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    (error,) = response.json()["errors"]
    assert error["element_id"] == "checks"
    assert error["line"] == line_containing(xml, 'id="checks"')
    assert "sequential" in error["message"].lower() and "ad-hoc" in error["message"].lower()
    assert ProcessDefinition.objects.count() == 0


def test_an_ad_hoc_subprocess_may_let_its_other_activities_finish(designer_client, approver_client):
    condition = "<bpmn:completionCondition>enough</bpmn:completionCondition>\n"
    xml = ad_hoc("ad_hoc_finish", condition).replace(
        'name="Checks"', 'name="Checks" cancelRemainingInstances="false"'
    )
    assert deploy(designer_client, xml).status_code == 201
    started = start(approver_client, "ad_hoc_finish", {"enough": False})
    tasks = {t["element_id"]: t["id"] for t in started["open_tasks"]}

    complete(approver_client, tasks["check_id"], {"enough": True})
    waiting = instance(approver_client, started["id"])
    assert [t["element_id"] for t in waiting["open_tasks"]] == ["check_address"]
    complete(approver_client, tasks["check_address"], {"address_ok": False})
    after = instance(approver_client, started["id"])
    assert [t["element_id"] for t in after["open_tasks"]] == ["after"]


def test_a_failing_completion_condition_is_an_incident(designer_client, approver_client):
    condition = "<bpmn:completionCondition>no_such_name</bpmn:completionCondition>\n"
    assert deploy(designer_client, ad_hoc("ad_hoc_failing", condition)).status_code == 201
    started = start(approver_client, "ad_hoc_failing")
    tasks = {t["element_id"]: t["id"] for t in started["open_tasks"]}

    complete(approver_client, tasks["check_id"])
    failed = instance(approver_client, started["id"])
    assert failed["status"] == "incident"
    assert "no_such_name" in failed["incident"]["error"]
    assert "'checks'" in failed["incident"]["error"]
    assert ProcessInstance.objects.get().status == ProcessInstance.Status.INCIDENT


def test_a_completion_condition_that_is_not_python_is_refused_at_deploy(designer_client):
    condition = "<bpmn:completionCondition>enough ==</bpmn:completionCondition>\n"
    xml = ad_hoc("ad_hoc_broken", condition)
    response = deploy(designer_client, xml)
    assert response.status_code == 400, response.content
    (error,) = response.json()["errors"]
    assert error["element_id"] == "checks"
    assert error["line"] == line_containing(xml, "<bpmn:completionCondition>")
    assert error["message"].startswith("The completion condition is not valid Python")
    assert ProcessDefinition.objects.count() == 0
