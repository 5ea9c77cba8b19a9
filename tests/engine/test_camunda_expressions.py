"""Camunda expressions in the diagram's own language: JUEL in `${...}` / `#{...}` (Camunda 7)
and FEEL after `=` (Camunda 8), read by one parser and interpreter (engine.bpmn.expressions);
what is outside the subset is refused at deploy, naming the element and the line."""

from typing import Any

import pytest

from engine.bpmn.expressions import (
    ExpressionFailed,
    ExpressionNotSupported,
    check,
    compile_expression,
    evaluate,
    is_expression,
)
from processes.validation import DeploymentInvalid, UploadedFile, parse_deployment
from tests.helpers import build_bpmn, line_containing

DATA: dict[str, Any] = {
    "x": 11,
    "y": "a",
    "ok": False,
    "flag": True,
    "amount": 1500,
    "region": "EU",
    "name": "Anna",
    "n": 0,
    "items": [1, 2, 3],
    "empty_list": [],
    "nothing": None,
    "order": {"amount": 1500, "lines": [1], "customer": {"name": "Bo"}},
    "orders": [{"id": 1, "total": 5}, {"id": 2, "total": 50}],
}

JUEL_ROWS: list[tuple[str, Any]] = [
    ("${x > 10}", True),
    ("${x >= 11 && x <= 11}", True),
    ("#{x gt 10 && y eq 'a'}", True),
    ("${x lt 3 || !ok}", True),
    ("${!flag}", False),
    ("${not flag}", False),
    # JUEL's `!` binds tighter than `==`.
    ("${!ok == true}", True),
    ("${x ne null and x ge 2 and x le 20}", True),
    ("${empty empty_list}", True),
    ("${empty n}", False),
    ("${empty nothing}", True),
    ("${not empty order['lines']}", True),
    ("${order.amount > 1000}", True),
    ("${order.customer.name == 'Bo'}", True),
    ("${items[0] + items[2]}", 4),
    ("${x div 2}", 5.5),
    ("${x / 11}", 1),
    ("${x mod 2 == 1 and x % 2 == 1}", True),
    ("${amount * 2 - 1}", 2999),
    ("${-x}", -11),
    ("${amount > 1000 ? 'big' : 'small'}", "big"),
    ("${name == 'not && null'}", False),
    ('${"double" == "double"}', True),
    ("${items.size()}", 3),
    ("${name.length() == 4}", True),
    ("${name.startsWith('An') and name.endsWith('na')}", True),
    ("${name.toUpperCase()}", "ANNA"),
    ("${name.substring(1, 3)}", "nn"),
    ("${items.contains(2)}", True),
    ("${order.containsKey('amount')}", True),
    ("${empty_list.isEmpty()}", True),
    ("${[1, x]}", [1, 11]),
    ("${{'k': x}}", {"k": 11}),
    ("${nothing == null}", True),
    ("${true}", True),
    ("${2.5 * 2}", 5),
]

FEEL_ROWS: list[tuple[str, Any]] = [
    ("= x > 10", True),
    ('=amount > 1000 and region = "EU"', True),
    ("= flag = true", True),
    ("= x != 11 or ok", False),
    ("= not(ok)", True),
    ("= order.amount", 1500),
    ("= order.customer.name", "Bo"),
    ("= order.missing", None),
    ("= unknown", None),
    ("= unknown > 3", None),
    ("= unknown = null", True),
    ("= is defined(unknown)", False),
    ("= is defined(order.amount)", True),
    ("= x + 1", 12),
    ("= x / 2", 5.5),
    ("= 10 / 5", 2),
    ("= 2 ** 10", 1024),
    ("= -x + 1", -10),
    ('= "a" + "b"', "ab"),
    ('= if x > 5 then "high" else "low"', "high"),
    ("= if unknown then 1 else 2", 2),
    ("= x in [1..20]", True),
    ("= x in (1..11)", False),
    ("= x in [1, 2, 11]", True),
    ('= region in ["EU", "US"]', True),
    ("= x between 10 and 12", True),
    ("= [1, 2, x]", [1, 2, 11]),
    ('= {a: x, "b c": 2}', {"a": 11, "b c": 2}),
    ("= items[1]", 1),
    ("= items[-1]", 3),
    ("= items[item > 1]", [2, 3]),
    ("= orders[total > 10].id", [2]),
    ("= count(orders[total > 10])", 1),
    ("= string length(name)", 4),
    ('= contains(name, "nn")', True),
    ('= starts with(name, "An")', True),
    ('= ends with(name, "x")', False),
    ("= upper case(name)", "ANNA"),
    ('= lower case("ABC")', "abc"),
    ("= substring(name, 2)", "nna"),
    ("= substring(name, 2, 2)", "nn"),
    ('= string(x) + "!"', "11!"),
    ('= number("42") + 1', 43),
    ("= count(items)", 3),
    ("= sum(items)", 6),
    ("= min(items)", 1),
    ("= max(4, 9, 2)", 9),
    ("= mean(items)", 2),
    ("= list contains(items, 2)", True),
    ("= append(items, 4)", [1, 2, 3, 4]),
    ('= string join(["a", "b"], ",")', "a,b"),
    ("= abs(-3) + floor(2.5) + ceiling(1.2)", 7),
]


@pytest.mark.parametrize(("written", "expected"), JUEL_ROWS + FEEL_ROWS)
def test_expression_values(written: str, expected: Any) -> None:
    assert is_expression(written)
    value = evaluate(written, DATA)
    assert value == expected and type(value) is type(expected), value


def test_plain_text_is_not_a_camunda_expression() -> None:
    assert not is_expression("x > 10")  # Python (Baton's dialect and SpiffArena's)
    assert not is_expression("PT5M")


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("${x >}", "ends too early"),
        ("${}", "empty"),
        ("#{a == (b}", "ends too early"),
        ("${!}", "ends too early"),
        ("${amount >> && 1}", "not valid JUEL"),
        ("${execution.getVariable('x')}", "method getVariable() is not supported"),
        ("${now_plus(3)}", "function now_plus() is not supported"),
        ("${x.__class__}", "starting with _"),
        ("${_secret}", "starting with _"),
        ("${x = 1}", "not valid JUEL"),
        ("= x >", "ends too early"),
        ("=", "empty"),
        ("= for i in items return i", "not valid FEEL"),
        ("= some x in items satisfies x > 1", "not valid FEEL"),
        ('= date("2024-01-01")', "function date() is not supported"),
        ("= string length(a, b)", "takes 1 arguments"),
        ("= x instance of number", "not valid FEEL"),
        ("= 'single quoted'", "not valid FEEL"),
    ],
)
def test_what_is_outside_the_subset_is_refused(written: str, reason: str) -> None:
    with pytest.raises(ExpressionNotSupported, match="Baton reads") as refused:
        check(written)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("${unknown > 1}", "no variable 'unknown'"),
        ("${name > 1}", "cannot compare"),
        ("${x / 0}", "division by zero"),
        ("= name + 1", "cannot compute"),
        ("= 10 ** 5000", "power above"),
        ("= not(name)", "takes a boolean"),
        ("= x and true", "needs a boolean"),
    ],
)
def test_what_fails_on_the_data_raises_a_clear_error(written: str, reason: str) -> None:
    with pytest.raises(ExpressionFailed, match=reason):
        evaluate(written, DATA)


def test_no_python_object_is_reached() -> None:
    class Secret:
        token = "s3cret"

    with pytest.raises(ExpressionFailed, match="only maps have entries"):
        evaluate("= obj.token", {"obj": Secret()})
    with pytest.raises(ExpressionFailed, match="only maps have entries"):
        evaluate("${obj['token']}", {"obj": Secret()})


def test_a_condition_that_cannot_be_read_is_refused_at_deploy_naming_element_and_line() -> None:
    document = build_bpmn("juel_bad", condition="${amount >> && 1}")
    with pytest.raises(DeploymentInvalid) as refused:
        parse_deployment([UploadedFile("juel.bpmn", document.encode())])
    [problem] = refused.value.problems
    assert problem.element_id == "flow_condition"
    assert problem.line == line_containing(document, "conditionExpression")
    assert "${amount >> && 1}" in problem.message
    assert "&& || ! and or not, empty" in problem.message


def test_a_feel_condition_that_cannot_be_read_is_refused_at_deploy() -> None:
    document = build_bpmn("feel_bad", condition="= for i in items return i")
    with pytest.raises(DeploymentInvalid) as refused:
        parse_deployment([UploadedFile("feel.bpmn", document.encode())])
    [problem] = refused.value.problems
    assert problem.element_id == "flow_condition"
    assert problem.line == line_containing(document, "conditionExpression")
    assert "not valid FEEL" in problem.message
    assert "string length()" in problem.message


def test_an_assignee_expression_that_cannot_be_read_is_refused_at_deploy() -> None:
    document = build_bpmn("juel_assignee", assignment='camunda:assignee="${owner[}"')
    with pytest.raises(DeploymentInvalid) as refused:
        parse_deployment([UploadedFile("juel.bpmn", document.encode())])
    [problem] = refused.value.problems
    assert problem.element_id == "review"
    assert "cannot be read" in problem.message


def test_nested_filters_stop_at_the_work_budget() -> None:
    """Ten items nested six deep would visit a million items: the evaluation stops early."""
    nested = "true"
    for _ in range(6):
        nested = f"count(L[{nested}]) > 0"
    expression = compile_expression(f"= {nested}")
    assert expression is not None
    with pytest.raises(ExpressionFailed, match="too much work"):
        expression.evaluate({"L": list(range(10))})
    # Two levels (100 visits) are fine.
    shallow = compile_expression("= count(L[count(L[true]) > 0]) > 0")
    assert shallow is not None
    assert shallow.evaluate({"L": list(range(10))}) is True


def test_distinct_values_of_many_items_is_linear() -> None:
    expression = compile_expression("= count(distinct values(xs))")
    assert expression is not None
    assert expression.evaluate({"xs": [i % 7 for i in range(20_000)]}) == 7
