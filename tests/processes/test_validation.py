"""Uploads that must be refused: each answers 400 through the API, names the file, the line and
the element where it can, and stores nothing."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from processes.models import Deployment, DeploymentFile, ProcessDefinition
from tests.helpers import build_bpmn, line_containing

DEPLOYMENTS_URL = "/api/v1/deployments/"
DOCTYPE_MESSAGE = "DOCTYPE"

BODY_OF_DOCUMENT = build_bpmn().split("\n", 1)[1]  # everything after the XML declaration


@pytest.fixture
def designer_client(api_client_for, designer):
    return api_client_for(designer)


def stored_counts() -> tuple[int, int, int]:
    return (
        Deployment.objects.count(),
        DeploymentFile.objects.count(),
        ProcessDefinition.objects.count(),
    )


def refused(client, content: str | bytes, file_name: str = "diagram.bpmn") -> list[dict]:
    """Upload one file, check the 400 problem answer and that nothing was stored."""
    before = stored_counts()
    data = content.encode("utf-8") if isinstance(content, str) else content
    response = client.post(
        DEPLOYMENTS_URL,
        {"files": [SimpleUploadedFile(file_name, data)]},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 400
    assert {"type", "title", "status", "detail", "errors"} <= body.keys()
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"file", "line", "element_id", "element_name", "message"}
        assert error["message"]
    assert stored_counts() == before
    return body["errors"]


def test_a_valid_document_from_the_builder_deploys(designer_client):
    # The baseline for every case below: the builder's documents are valid as they are.
    document = build_bpmn(script="a = 1", script_after="b = 2", condition="a == 1")
    response = designer_client.post(
        DEPLOYMENTS_URL, {"name": "tiny", "bpmn_xml": document}, format="json"
    )
    assert response.status_code == 201, response.content
    assert [d["key"] for d in response.json()["definitions"]] == ["tiny"]


def test_malformed_xml_is_refused_with_its_line(designer_client):
    document = build_bpmn().replace(
        '<bpmn:endEvent id="end" name="End" />', '<bpmn:endEvent id="end" name="End">'
    )
    (error,) = refused(designer_client, document)
    assert error["file"] == "diagram.bpmn"
    assert "malformed" in error["message"]
    # libxml2 notices the unclosed element where the enclosing process closes.
    assert error["line"] == line_containing(document, "</bpmn:process>")


def test_a_process_without_start_event_is_refused(designer_client):
    document = build_bpmn("no_start", start_event=False)
    (error,) = refused(designer_client, document)
    assert error["file"] == "diagram.bpmn"
    assert error["element_id"] == "no_start"
    assert error["line"] == line_containing(document, '<bpmn:process id="no_start"')
    assert "start event" in error["message"].lower()


def test_a_condition_with_a_python_syntax_error_names_the_flow(designer_client):
    document = build_bpmn(condition="amount >>> 100")
    (error,) = refused(designer_client, document)
    assert error["file"] == "diagram.bpmn"
    assert error["element_id"] == "flow_condition"
    assert error["line"] == line_containing(document, "<bpmn:conditionExpression")
    assert "condition" in error["message"]
    assert "Python" in error["message"]


def test_a_script_with_a_python_syntax_error_names_the_task(designer_client):
    document = build_bpmn(script="total = (1 +")
    (error,) = refused(designer_client, document)
    assert error["element_id"] == "prepare"
    assert error["line"] == line_containing(document, "<bpmn:script>")
    assert "script" in error["message"]
    assert "Python" in error["message"]


def test_a_script_error_on_a_later_line_points_at_that_line(designer_client):
    document = build_bpmn(script="a = 1\nif a\n    b = 2")
    (error,) = refused(designer_client, document)
    assert error["element_id"] == "prepare"
    assert error["line"] == line_containing(document, "if a")


@pytest.mark.parametrize("where", ["text", "attribute"])
def test_an_external_entity_is_refused(designer_client, where):
    body = BODY_OF_DOCUMENT
    if where == "text":
        body = body.replace(
            '<bpmn:startEvent id="start" name="Start" />',
            '<bpmn:startEvent id="start" name="Start">'
            "<bpmn:documentation>&xxe;</bpmn:documentation></bpmn:startEvent>",
        )
    else:
        body = body.replace('name="Review"', 'name="&xxe;"')
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE bpmn:definitions [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>\n' + body
    )
    (error,) = refused(designer_client, document)
    assert error["file"] == "diagram.bpmn"
    assert DOCTYPE_MESSAGE in error["message"]


@pytest.mark.parametrize("where", ["text", "attribute"])
def test_a_billion_laughs_entity_bomb_is_refused(designer_client, where):
    entities = ['  <!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append(f'  <!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    body = BODY_OF_DOCUMENT
    if where == "text":
        body = body.replace(
            '<bpmn:startEvent id="start" name="Start" />',
            '<bpmn:startEvent id="start" name="Start">'
            "<bpmn:documentation>&lol9;</bpmn:documentation></bpmn:startEvent>",
        )
    else:
        body = body.replace('name="Review"', 'name="&lol9;"')
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE lolz [\n'
        + "\n".join(entities)
        + "\n]>\n"
        + body
    )
    (error,) = refused(designer_client, document)
    assert DOCTYPE_MESSAGE in error["message"]


def test_a_file_over_the_size_cap_is_refused(designer_client, settings):
    document = build_bpmn()
    settings.BATON_MAX_FILE_BYTES = len(document.encode()) - 1
    (error,) = refused(designer_client, document)
    assert error["file"] == "diagram.bpmn"
    assert "limit" in error["message"]
    assert str(settings.BATON_MAX_FILE_BYTES) in error["message"]


def test_a_file_at_the_size_cap_is_accepted(designer_client, settings):
    document = build_bpmn()
    settings.BATON_MAX_FILE_BYTES = len(document.encode())
    response = designer_client.post(
        DEPLOYMENTS_URL,
        {"files": [SimpleUploadedFile("diagram.bpmn", document.encode())]},
        format="multipart",
    )
    assert response.status_code == 201, response.content


def test_a_file_that_is_not_bpmn_is_refused(designer_client):
    (error,) = refused(designer_client, build_bpmn(), file_name="diagram.txt")
    assert error["file"] == "diagram.txt"
    assert ".bpmn" in error["message"]


def test_a_document_failing_the_bpmn_schema_names_the_element(designer_client):
    document = build_bpmn().replace(
        '<bpmn:endEvent id="end" name="End" />',
        '<bpmn:endEvent id="end" name="End" /><bpmn:notAnElement id="stray" />',
    )
    (error,) = refused(designer_client, document)
    assert error["file"] == "diagram.bpmn"
    assert error["element_id"] == "stray"
    assert error["line"] == line_containing(document, "notAnElement")
    assert "BPMN 2.0 schema" in error["message"]


def test_a_schema_error_in_an_attribute_names_the_element(designer_client):
    document = build_bpmn("tiny").replace('isExecutable="true"', 'isExecutable="maybe"')
    (error,) = refused(designer_client, document)
    assert error["element_id"] == "tiny"
    assert error["line"] == line_containing(document, 'isExecutable="maybe"')
    assert "isExecutable" in error["message"]


def test_xml_that_is_not_bpmn_is_refused(designer_client):
    (error,) = refused(designer_client, '<?xml version="1.0"?>\n<invoice id="x" />\n')
    assert "not a BPMN 2.0 document" in error["message"]


def test_a_json_body_is_validated_the_same_way(designer_client):
    before = stored_counts()
    response = designer_client.post(
        DEPLOYMENTS_URL,
        {"name": "broken", "bpmn_xml": build_bpmn(script="x = = 1")},
        format="json",
    )
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["file"] == "broken.bpmn"
    assert error["element_id"] == "prepare"
    assert stored_counts() == before


def test_one_bad_file_stops_the_whole_upload(designer_client):
    before = stored_counts()
    response = designer_client.post(
        DEPLOYMENTS_URL,
        {
            "files": [
                SimpleUploadedFile("good.bpmn", build_bpmn("good_one").encode()),
                SimpleUploadedFile("bad.bpmn", build_bpmn("bad_one", script="1 +").encode()),
            ]
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert [e["file"] for e in response.json()["errors"]] == ["bad.bpmn"]
    assert stored_counts() == before


def test_a_spiffarena_operator_naming_an_unknown_connector_is_refused(
    api_client_for, designer
) -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
        'id="d" targetNamespace="x">\n'
        '  <bpmn:process id="svc" isExecutable="true">\n'
        '    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="call"/>\n'
        '    <bpmn:serviceTask id="call"><bpmn:extensionElements>'
        '<spiffworkflow:serviceTaskOperator id="crm.nowhere"/>'
        "</bpmn:extensionElements></bpmn:serviceTask>\n"
        '    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="e"/><bpmn:endEvent id="e"/>\n'
        "  </bpmn:process>\n</bpmn:definitions>\n"
    )
    response = api_client_for(designer).post(
        "/api/v1/deployments/", {"name": "svc", "bpmn_xml": xml}, format="json"
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["element_id"], error["line"]) == ("call", 5)
    assert "Unknown connector 'crm.nowhere'" in error["message"]
    assert "http" in error["message"]  # the registered ones are listed
    assert not ProcessDefinition.objects.filter(key="svc").exists()


def test_a_deployment_over_the_total_cap_is_refused(settings, api_client_for, designer) -> None:
    settings.BATON_MAX_DEPLOYMENT_BYTES = 1000
    files = [SimpleUploadedFile(f"part{i}.json", b"[" + b"0," * 200 + b"0]") for i in range(3)]
    response = api_client_for(designer).post(
        "/api/v1/deployments/", {"files": files}, format="multipart"
    )
    assert response.status_code == 400
    assert "at most 1000 bytes" in response.json()["errors"][0]["message"]
    assert Deployment.objects.count() == 0


def test_zip_archives_are_not_accepted(api_client_for, designer) -> None:
    archive = SimpleUploadedFile("bundle.zip", b"PK\x03\x04" + b"\x00" * 100)
    response = api_client_for(designer).post(
        "/api/v1/deployments/", {"files": [archive]}, format="multipart"
    )
    assert response.status_code == 400
    assert "Only .bpmn, .dmn and .json files" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("startQuantity", "2"), ("startQuantity", "0"), ("completionQuantity", "2")],
)
def test_an_activity_quantity_other_than_one_is_refused_not_ignored(
    designer_client, attribute, value
):
    document = build_bpmn(script="a = 1").replace(
        '<bpmn:scriptTask id="prepare"', f'<bpmn:scriptTask id="prepare" {attribute}="{value}"'
    )
    (error,) = refused(designer_client, document)
    assert error["element_id"] == "prepare"
    assert error["line"] == line_containing(document, '<bpmn:scriptTask id="prepare"')
    assert f"{attribute}='{value}' is not supported" in error["message"]


def test_a_negative_loop_maximum_is_refused_not_ignored(designer_client):
    document = build_bpmn(script="a = 1").replace(
        "<bpmn:script>a = 1</bpmn:script>",
        '<bpmn:standardLoopCharacteristics loopMaximum="-1" /><bpmn:script>a = 1</bpmn:script>',
    )
    (error,) = refused(designer_client, document)
    assert error["element_id"] == "prepare"
    assert "loopMaximum='-1' must be a whole number of 0 or more" in error["message"]


def test_quantities_of_one_and_a_loop_maximum_deploy(designer_client):
    document = (
        build_bpmn(script="a = 1")
        .replace(
            '<bpmn:scriptTask id="prepare"',
            '<bpmn:scriptTask id="prepare" startQuantity="1" completionQuantity="1"',
        )
        .replace(
            "<bpmn:script>a = 1</bpmn:script>",
            '<bpmn:standardLoopCharacteristics loopMaximum="3" /><bpmn:script>a = 1</bpmn:script>',
        )
    )
    response = designer_client.post(
        DEPLOYMENTS_URL, {"name": "tiny", "bpmn_xml": document}, format="json"
    )
    assert response.status_code == 201, response.content
