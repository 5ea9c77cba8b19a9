"""The process pages through the test client: the list with thumbnails and instance counts,
the detail page with versions and their differences, downloads and the modeler pages."""

import json
import re

import pytest
from django.test import Client
from lxml import etree

from engine.services import start_instance
from processes.modeler_views import blank_diagram
from processes.models import ProcessDefinition
from processes.services import deploy
from processes.validation import UploadedFile
from tests.helpers import EXPENSE_FILE, build_bpmn

V1_XML = EXPENSE_FILE.read_text()
V2_XML = V1_XML.replace('camunda:candidateGroups="managers"', 'camunda:candidateGroups="legal"')


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def deploy_xml(xml: str, actor=None, file_name: str = "expense_approval.bpmn"):
    return deploy(name="", files=[UploadedFile(file_name, xml.encode())], actor=actor)


def json_script(html: str, element_id: str):
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.DOTALL
    )
    assert match, f"no json_script {element_id}"
    return json.loads(match.group(1))


# --- the list ------------------------------------------------------------------------------


def test_the_list_shows_latest_versions_instance_counts_and_actions(designer, approver):
    deploy_xml(V1_XML, designer)
    deploy_xml(V2_XML, designer)
    first = start_instance(
        key="expense_approval",
        actor=approver,
        variables={"amount": 5, "description": "Pens", "requester": "x"},
    )
    start_instance(
        key="expense_approval",
        actor=approver,
        variables={"amount": 5, "description": "Pens", "requester": "x"},
    )
    first.status = "completed"
    first.save(update_fields=["status"])

    html = client_for(designer).get("/processes/").content.decode()

    found = re.search(r'<tr data-key="expense_approval">(.*?)</tr>', html, re.DOTALL)
    assert found is not None
    row = found.group(1)
    assert "v2" in row and "v1" not in row
    assert "by dora_designer" in row
    assert "1 active" in row and "2 in all" in row
    assert 'src="/processes/expense_approval/v2/thumbnail.svg"' in row
    for href in (
        "/processes/expense_approval/",
        "/processes/expense_approval/edit/",
        "/processes/expense_approval/download/",
        "/processes/expense_approval/start/",
    ):
        assert f'href="{href}"' in row
    assert 'href="/processes/new/"' in html


def test_people_outside_designers_get_no_edit_or_new_links(approver, expense_definition):
    html = client_for(approver).get("/processes/").content.decode()

    assert "/edit/" not in html
    assert "/processes/new/" not in html
    assert 'href="/processes/expense_approval/start/"' in html


def test_the_list_needs_a_login(db):
    response = Client().get("/processes/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- thumbnails and downloads --------------------------------------------------------------


def test_the_thumbnail_is_an_svg_of_the_diagram(approver, expense_definition):
    response = client_for(approver).get("/processes/expense_approval/v1/thumbnail.svg")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert "max-age" in response["Cache-Control"]
    svg = etree.fromstring(response.content)
    ns = {"s": "http://www.w3.org/2000/svg"}
    # 4 script and user tasks, 3 events, 1 gateway, 7 flows.
    assert len(svg.findall("s:rect", ns)) == 4
    assert len(svg.findall("s:circle", ns)) == 3
    assert len(svg.findall("s:polygon", ns)) == 1
    assert len(svg.findall("s:polyline", ns)) == 7
    assert svg.get("viewBox")


def test_a_diagram_without_layout_has_an_empty_thumbnail(approver, designer):
    deploy_xml(build_bpmn("tiny"), designer, "tiny.bpmn")
    response = client_for(approver).get("/processes/tiny/v1/thumbnail.svg")
    assert response.status_code == 200
    assert etree.fromstring(response.content).get("viewBox") == "0 0 10 10"


def test_unknown_versions_are_404(approver, expense_definition):
    client = client_for(approver)
    assert client.get("/processes/expense_approval/v9/thumbnail.svg").status_code == 404
    assert client.get("/processes/nothing/").status_code == 404
    assert client.get("/processes/expense_approval/download/?version=9").status_code == 404
    assert client.get("/processes/nothing/edit/").status_code in (403, 404)


def test_download_gives_the_file_of_the_version(designer, approver):
    deploy_xml(V1_XML, designer)
    deploy_xml(V2_XML, designer)
    client = client_for(approver)

    latest = client.get("/processes/expense_approval/download/")
    first = client.get("/processes/expense_approval/download/?version=1")

    assert latest["Content-Disposition"] == 'attachment; filename="expense_approval.bpmn"'
    assert latest.content.decode() == V2_XML
    assert first.content.decode() == V1_XML


# --- the detail page -----------------------------------------------------------------------


def test_the_detail_page_shows_the_diagram_versions_and_the_latest_change(designer, approver):
    deploy_xml(V1_XML, None)
    deploy_xml(V2_XML, designer)
    start_instance(
        key="expense_approval",
        actor=approver,
        variables={"amount": 5, "description": "Pens", "requester": "x"},
    )

    response = client_for(approver).get("/processes/expense_approval/")

    assert response.status_code == 200
    html = response.content.decode()
    assert json_script(html, "viewer-config") == {
        "xml": V2_XML,
        "marks": {"added": [], "changed": ["approve_expense"]},
        "coverage": None,  # no test coverage report stored
    }
    rows = re.findall(r"<tr[^>]*>\s*<td data-label=\"Version\">(.*?)</tr>", html, re.DOTALL)
    assert [re.sub(r"<[^>]+>|\s+", " ", r).split()[:5] for r in rows] == [
        [
            "v2",
            *ProcessDefinition.objects.get(version=2).created_at.strftime("%Y-%m-%d %H:%M").split(),
            "dora_designer",
            "1",
        ],
        [
            "v1",
            *ProcessDefinition.objects.get(version=1).created_at.strftime("%Y-%m-%d %H:%M").split(),
            "system",
            "0",
        ],
    ]
    summary = response.context["diff"]
    assert (response.context["diff_from"], response.context["diff_to"]) == (1, 2)
    assert [c.element_id for c in summary.changed] == ["approve_expense"]
    assert summary.changed[0].details == ("camunda:candidateGroups: “managers” → “legal”",)
    assert "0 added, 0 removed, 1 changed" in html
    actions = re.search(r'<div class="actions">(.*?)</div>', html, re.DOTALL)
    assert actions is not None and "Edit" not in actions.group(1)


def test_an_older_version_can_be_shown_and_versions_compared_either_way(designer):
    deploy_xml(V1_XML, designer)
    deploy_xml(V2_XML, designer)
    client = client_for(designer)

    older = client.get("/processes/expense_approval/?version=1")
    assert json_script(older.content.decode(), "viewer-config")["xml"] == V1_XML
    assert "showing version 1" in older.content.decode()

    backwards = client.get("/processes/expense_approval/?from=2&to=1&version=1")
    assert backwards.context["diff"].changed[0].details == (
        "camunda:candidateGroups: “legal” → “managers”",
    )
    same = client.get("/processes/expense_approval/?from=2&to=2")
    assert same.context["diff"] is None
    assert "Choose two different versions." in same.content.decode()
    junk = client.get("/processes/expense_approval/?from=x&to=-1&version=abc")
    assert junk.status_code == 200
    assert junk.context["definition"].version == 2


# --- the modeler pages ---------------------------------------------------------------------


def test_the_new_page_opens_a_blank_executable_diagram_with_the_connectors(designer):
    response = client_for(designer).get("/processes/new/")

    assert response.status_code == 200
    config = json_script(response.content.decode(), "modeler-config")
    assert config["saveUrl"] == "/processes/modeler/save/"
    assert config["isNew"] is True
    offered = {c["name"]: c["description"] for c in config["connectors"]}
    assert offered["http"].startswith("Calls an HTTP API")
    assert "http/GetRequest" in offered
    # SpiffArena's V2 aliases keep working for old diagrams but are not offered.
    assert not [name for name in offered if name.endswith("V2")]
    assert re.fullmatch(r"Process_[0-9a-f]{8}\.bpmn", config["fileName"])
    assert 'isExecutable="true"' in config["xml"]
    assert "/static/bundles/modeler.js" in response.content.decode()


def test_the_blank_diagram_deploys(designer):
    process_id, xml = blank_diagram()
    result = deploy_xml(xml, designer, f"{process_id}.bpmn")
    assert [d.key for d in result.created] == [process_id]


def test_the_edit_page_opens_the_latest_version(designer):
    deploy_xml(V1_XML, designer)
    deploy_xml(V2_XML, designer)

    response = client_for(designer).get("/processes/expense_approval/edit/")

    config = json_script(response.content.decode(), "modeler-config")
    assert config["xml"] == V2_XML
    assert config["fileName"] == "expense_approval.bpmn"
    assert config["isNew"] is False
    assert "Opened version 2" in response.content.decode()


@pytest.mark.parametrize("url", ["/processes/new/", "/processes/expense_approval/edit/"])
def test_modeler_pages_are_for_designers(approver, expense_definition, url):
    response = client_for(approver).get(url)
    assert response.status_code == 403
    assert "Only members of the designers group" in response.content.decode()
    assert Client().get(url).status_code == 302
