"""Every literal Baton parses later is checked at deploy (issue 18): due dates, priorities,
timers, retry cycles and form constraints. A diagram with several problems gets them all in
one answer, each naming the element by name and id and the line in the uploaded file."""

import pytest

from tests.helpers import build_bpmn, line_containing
from tests.processes.test_validation import DEPLOYMENTS_URL, refused

REVIEW = '<bpmn:userTask id="review"'


@pytest.fixture
def designer_client(api_client_for, designer):
    return api_client_for(designer)


def with_review(attributes: str, script: str | None = None) -> str:
    return build_bpmn(assignment=f'camunda:candidateGroups="managers" {attributes}', script=script)


def test_a_due_date_in_words_is_refused_naming_the_element(designer_client):
    document = with_review('camunda:dueDate="next friday"')

    (error,) = refused(designer_client, document, file_name="expenses-v2.bpmn")

    assert error["file"] == "expenses-v2.bpmn"
    assert (error["element_id"], error["element_name"]) == ("review", "Review")
    assert error["line"] == line_containing(document, REVIEW)
    assert "'next friday'" in error["message"]
    assert "ISO 8601" in error["message"]


@pytest.mark.parametrize(
    "due_date",
    ["2030-01-31T17:00:00Z", "P3D", "PT4H", "${deadline}", "${empty deadline ? 'P3D' : deadline}"],
)
def test_iso_due_dates_and_expressions_deploy(designer_client, due_date):
    response = designer_client.post(
        DEPLOYMENTS_URL,
        {"name": "tiny", "bpmn_xml": with_review(f'camunda:dueDate="{due_date}"')},
        format="json",
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ('camunda:dueDate="${deadline +}"', "The expression ${deadline +} cannot be read"),
        ('camunda:priority="high"', "'high' is not a whole number"),
        ('camunda:priority="${1 +}"', "The expression ${1 +} cannot be read"),
    ],
)
def test_bad_user_task_literals_are_refused(designer_client, attributes, expected):
    (error,) = refused(designer_client, with_review(attributes))
    assert error["element_id"] == "review"
    assert expected in error["message"]


def test_two_problems_in_one_diagram_give_two_messages(designer_client):
    document = with_review('camunda:dueDate="next friday" camunda:priority="urgent"').replace(
        '<camunda:formField id="note" label="Note" type="string" />',
        '<camunda:formField id="note" label="Note" type="string">'
        '<camunda:validation><camunda:constraint name="pattern" config="[a-z" />'
        "</camunda:validation></camunda:formField>",
    )

    errors = refused(designer_client, document)

    messages = sorted(e["message"] for e in errors)
    assert len(errors) == 3, messages
    assert any("next friday" in m for m in messages)
    assert any("'urgent'" in m for m in messages)
    assert any("pattern='[a-z'" in m and "regular expression" in m for m in messages)
    assert {e["element_id"] for e in errors} == {"review"}


def test_a_literal_problem_and_a_script_error_come_together(designer_client):
    document = with_review('camunda:dueDate="next friday"', script="a = = 1")
    errors = refused(designer_client, document)
    assert sorted(e["element_id"] for e in errors) == ["prepare", "review"]


TIMER_PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="timed" isExecutable="true">
    <bpmn:startEvent id="start" name="Every day">
      <bpmn:timerEventDefinition><bpmn:timeCycle>{start}</bpmn:timeCycle></bpmn:timerEventDefinition>
    </bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait" name="Wait a bit">
      <bpmn:timerEventDefinition><bpmn:timeDuration>{duration}</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:serviceTask id="call" name="Call" camunda:type="external" camunda:topic="http">
      <bpmn:extensionElements>
        <camunda:inputOutput><camunda:inputParameter name="url">https://example.org</camunda:inputParameter></camunda:inputOutput>
        <camunda:failedJobRetryTimeCycle>{retry}</camunda:failedJobRetryTimeCycle>
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="call" />
    <bpmn:sequenceFlow id="f3" sourceRef="call" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def test_timer_and_retry_literals_are_all_checked_at_once(designer_client):
    document = TIMER_PROCESS.format(start="0 0 25 * * ?", duration="in an hour", retry="R5")

    errors = refused(designer_client, document, file_name="timed.bpmn")

    by_element = {e["element_id"]: e for e in errors}
    assert set(by_element) == {"start", "wait", "call"}
    assert by_element["start"]["element_name"] == "Every day"
    assert by_element["wait"]["line"] == line_containing(document, "in an hour")
    assert "'in an hour'" in by_element["wait"]["message"]
    assert "R5/PT30S" in by_element["call"]["message"]


def test_valid_timer_and_retry_literals_deploy(designer_client):
    document = TIMER_PROCESS.format(start="0 0 6 * * ?", duration="PT1H", retry="R3/PT30S")
    response = designer_client.post(
        DEPLOYMENTS_URL, {"name": "timed", "bpmn_xml": document}, format="json"
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ('name="min" config="ten"', "min='ten' is not a number"),
        ('name="maxlength" config="-1"', "maxlength='-1' is not a whole number"),
        ('name="maxLength" config="3"', "'maxLength' is not one Baton checks"),
        ('name="minlength"', "needs a value"),
    ],
)
def test_form_constraints_are_checked(designer_client, constraint, expected):
    document = build_bpmn().replace(
        '<camunda:formField id="note" label="Note" type="string" />',
        '<camunda:formField id="note" label="Note" type="string"><camunda:validation>'
        f"<camunda:constraint {constraint} /></camunda:validation></camunda:formField>",
    )
    (error,) = refused(designer_client, document)
    assert error["element_id"] == "review"
    assert expected in error["message"]
