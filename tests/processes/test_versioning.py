"""A changed diagram is a new version; running instances stay on the version they started on."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from engine.models import ProcessInstance
from engine.services import complete_human_task, start_instance
from processes.models import Deployment, ProcessDefinition
from processes.services import deploy_examples
from tests.helpers import EXPENSE_FILE

DEPLOYMENTS_URL = "/api/v1/deployments/"
START_URL = "/api/v1/definitions/expense_approval/start/"
VARIABLES = {"amount": 250, "description": "Taxi", "requester": "bob"}

V1_XML = EXPENSE_FILE.read_text()
# Version 2 records a different outcome on approval and renames the approval task.
V2_XML = V1_XML.replace(
    '<bpmn:script>outcome = "approved"</bpmn:script>',
    '<bpmn:script>outcome = "approved (v2)"</bpmn:script>',
).replace('name="Approve expense"', 'name="Approve expense (v2)"')


def upload(client, xml: str):
    return client.post(
        DEPLOYMENTS_URL,
        {"files": [SimpleUploadedFile("expense_approval.bpmn", xml.encode())]},
        format="multipart",
    )


@pytest.fixture
def designer_client(api_client_for, designer):
    return api_client_for(designer)


def test_the_changed_diagram_differs():
    assert V2_XML != V1_XML
    assert V2_XML.count("approved (v2)") == 1


def test_a_changed_diagram_is_a_new_version_and_old_instances_stay_on_theirs(
    designer_client, api_client_for, approver
):
    assert upload(designer_client, V1_XML).status_code == 201
    old = start_instance(key="expense_approval", variables=VARIABLES)
    assert old.definition.version == 1
    old_task = old.human_tasks.get()
    assert old_task.name == "Approve expense"

    response = upload(designer_client, V2_XML)
    assert response.status_code == 201, response.content
    assert [(d["key"], d["version"]) for d in response.json()["definitions"]] == [
        ("expense_approval", 2)
    ]
    assert Deployment.objects.count() == 2
    v1, v2 = (ProcessDefinition.objects.get(key="expense_approval", version=v) for v in (1, 2))
    assert v1.bpmn_xml == V1_XML
    assert v2.bpmn_xml == V2_XML
    assert v1.checksum != v2.checksum

    # New starts use version 2.
    client = api_client_for(approver)
    started = client.post(START_URL, {"variables": VARIABLES}, format="json")
    assert started.status_code == 201, started.content
    assert started.json()["version"] == 2
    (new_task,) = started.json()["open_tasks"]
    assert new_task["name"] == "Approve expense (v2)"
    new = ProcessInstance.objects.get(pk=started.json()["id"])
    assert new.definition == v2

    # The version-1 instance completes on version 1, following version 1's path.
    complete_human_task(task_id=old_task.pk, user=approver, variables={"decision": "approve"})
    old.refresh_from_db()
    assert old.definition == v1
    assert old.status == ProcessInstance.Status.COMPLETED
    assert old.variables["outcome"] == "approved"

    complete_human_task(task_id=new_task["id"], user=approver, variables={"decision": "approve"})
    new.refresh_from_db()
    assert new.definition == v2
    assert new.status == ProcessInstance.Status.COMPLETED
    assert new.variables["outcome"] == "approved (v2)"


def test_start_with_an_explicit_version(designer_client, api_client_for, approver):
    assert upload(designer_client, V1_XML).status_code == 201
    assert upload(designer_client, V2_XML).status_code == 201
    client = api_client_for(approver)

    response = client.post(START_URL, {"variables": VARIABLES, "version": 1}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["version"] == 1
    instance = ProcessInstance.objects.get(pk=response.json()["id"])
    assert instance.definition.version == 1
    (task,) = response.json()["open_tasks"]
    assert task["name"] == "Approve expense"
    complete_human_task(task_id=task["id"], user=approver, variables={"decision": "approve"})
    instance.refresh_from_db()
    assert instance.variables["outcome"] == "approved"

    latest = client.post(START_URL, {"variables": VARIABLES, "version": None}, format="json")
    assert latest.json()["version"] == 2


def test_redeploying_an_older_content_makes_a_new_version(designer_client):
    # Versions compare with the latest one: going back to v1's content is version 3.
    for xml, expected_status, expected_version in (
        (V1_XML, 201, 1),
        (V2_XML, 201, 2),
        (V2_XML, 200, 2),
        (V1_XML, 201, 3),
    ):
        response = upload(designer_client, xml)
        assert response.status_code == expected_status, response.content
        assert response.json()["definitions"][0]["version"] == expected_version
    assert list(
        ProcessDefinition.objects.order_by("version").values_list("version", flat=True)
    ) == [1, 2, 3]


def test_the_shipped_examples_deploy_once(example_definitions):
    assert {"expense_approval", "parallel_review"} <= set(example_definitions)
    assert all(d.version == 1 for d in example_definitions.values())
    deployments = Deployment.objects.count()
    assert deploy_examples() == []
    assert Deployment.objects.count() == deployments
    assert ProcessDefinition.objects.count() == len(example_definitions)
