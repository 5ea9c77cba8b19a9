"""Camunda 7 `${...}` / `#{...}` expressions: JUEL operators read as Python, refused at deploy
when they do not translate."""

import pytest

from engine.bpmn.expressions import ExpressionNotSupported, python_source
from processes.validation import DeploymentInvalid, UploadedFile, parse_deployment
from tests.helpers import build_bpmn, line_containing


@pytest.mark.parametrize(
    ("written", "data", "expected"),
    [
        ("${x > 10}", {"x": 11}, True),
        ("#{x gt 10 && y eq 'a'}", {"x": 11, "y": "a"}, True),
        ("${x lt 3 || !ok}", {"x": 5, "ok": False}, True),
        # JUEL's `!` binds tighter than `==`; Python's `not` would negate the comparison.
        ("${!ok == false}", {"ok": True}, True),
        ("${x ne null and x ge 2 and x le 2}", {"x": 2}, True),
        ("${empty items}", {"items": []}, True),
        ("${empty n}", {"n": 0}, False),
        ("${not empty order['lines']}", {"order": {"lines": [1]}}, True),
        ("${x div 2 == 2 and x mod 2 == 0 and flag == true}", {"x": 4, "flag": True}, True),
        ("${name == 'not && null'}", {"name": "not && null"}, True),
        ("x > 10", {"x": 1}, False),  # Python as written
    ],
)
def test_juel_operators_read_as_python(written: str, data: dict, expected: bool) -> None:
    assert eval(python_source(written), {"__builtins__": {}}, data) is expected  # noqa: S307


@pytest.mark.parametrize("written", ["${x >}", "${}", "#{a == (b}", "${!}"])
def test_what_does_not_translate_is_refused(written: str) -> None:
    with pytest.raises(ExpressionNotSupported, match="Python expression"):
        python_source(written)


def test_a_condition_that_does_not_translate_is_refused_at_deploy_naming_element_and_line() -> None:
    document = build_bpmn("juel_bad", condition="${amount >> && 1}")
    with pytest.raises(DeploymentInvalid) as refused:
        parse_deployment([UploadedFile("juel.bpmn", document.encode())])
    [problem] = refused.value.problems
    assert problem.element_id == "flow_condition"
    assert problem.line == line_containing(document, "conditionExpression")
    assert "${amount >> && 1}" in problem.message
    assert "&& || ! eq ne lt gt le ge" in problem.message


def test_an_assignee_expression_that_does_not_translate_is_refused_at_deploy() -> None:
    document = build_bpmn("juel_assignee", assignment='camunda:assignee="${owner[}"')
    with pytest.raises(DeploymentInvalid) as refused:
        parse_deployment([UploadedFile("juel.bpmn", document.encode())])
    [problem] = refused.value.problems
    assert problem.element_id == "review"
    assert "cannot be read" in problem.message
