"""transform/... connectors: pure conversions (no network), end to end through a diagram and
for their edge cases directly."""

from typing import Any

import pytest

from engine.connectors import BusinessError, ConnectorCall
from engine.connectors.transform import (
    csv_to_json,
    jmespath_search,
    json_to_csv,
    json_to_xml,
    xml_to_json,
)
from tests.connectors.diagrams import run

CALL = ConnectorCall(job_id="j", idempotency_key="k", attempt=1, element_id="e", instance_id="i")


def error_code(function: Any, params: dict[str, Any]) -> str:
    with pytest.raises(BusinessError) as raised:
        function(params, CALL)
    return raised.value.code


@pytest.mark.django_db(transaction=True)
def test_call_transform_aggregate_needs_no_script() -> None:
    orders = [
        {"id": 1, "customer": "ann", "total": 30},
        {"id": 2, "customer": "bob", "total": 12},
        {"id": 3, "customer": "ann", "total": 8},
    ]
    instance = run(
        "tr_jmespath",
        "transform/jmespath",
        {
            "expression": "'{big: orders[?total > `10`].id, sum: sum(orders[].total)}'",
            "value": "{'orders': orders}",
        },
        {"orders": orders},
    )
    assert instance.status == "completed", instance.incident
    assert instance.variables["outcome"] == {"big": [1, 2], "sum": 50}

    # Instance data is JSONB, which keeps no key order: `columns` gives the order.
    instance = run(
        "tr_csv",
        "transform/json_to_csv",
        {"rows": "orders", "columns": "['id', 'customer', 'total']"},
        {"orders": orders},
    )
    assert instance.status == "completed", instance.incident
    text = instance.variables["outcome"]
    assert text == "id,customer,total\n1,ann,30\n2,bob,12\n3,ann,8\n"

    instance = run("tr_csv_back", "transform/csv_to_json", {"csv": "text"}, {"text": text})
    assert instance.variables["outcome"][0] == {"id": "1", "customer": "ann", "total": "30"}


@pytest.mark.django_db(transaction=True)
def test_bad_input_is_a_catchable_bpmn_error() -> None:
    instance = run(
        "tr_bad",
        "transform/xml_to_json",
        {"xml": "'<a><b></a>'"},
        {},
        catch="TRANSFORM_INVALID",
    )
    assert instance.status == "completed" and instance.variables.get("caught") is True


def test_json_and_xml_round_trip() -> None:
    value = {
        "order": {
            "@id": "A-17",
            "customer": "Ann & Bob <Ltd>",
            "line": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}],
            "paid": True,
            "note": None,
        }
    }
    xml = json_to_xml({"value": value}, CALL)
    assert xml == (
        '<order id="A-17"><customer>Ann &amp; Bob &lt;Ltd&gt;</customer>'
        "<line><sku>x</sku><qty>2</qty></line><line><sku>y</sku><qty>1</qty></line>"
        "<paid>true</paid><note></note></order>"
    )
    back = xml_to_json({"xml": xml}, CALL)
    assert back == {
        "order": {
            "@id": "A-17",
            "customer": "Ann & Bob <Ltd>",
            "line": [{"sku": "x", "qty": "2"}, {"sku": "y", "qty": "1"}],
            "paid": "true",
            "note": None,
        }
    }
    assert json_to_xml({"value": [1, 2], "root": "numbers"}, CALL) == "<numbers>[1, 2]</numbers>"
    assert json_to_xml({"value": {"item": [1, 2]}, "root": "list"}, CALL) == (
        "<list><item>1</item><item>2</item></list>"
    )


def test_xml_input_is_parsed_as_untrusted() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    )
    deep = "<a>" * 600 + "</a>" * 600
    for text in (bomb, external, deep, "not xml"):
        assert error_code(xml_to_json, {"xml": text}) == "TRANSFORM_INVALID"
    assert error_code(json_to_xml, {"value": {"bad name": 1}}) == "TRANSFORM_INVALID"
    assert error_code(json_to_xml, {"value": {"xmlthing": 1}}) == "TRANSFORM_INVALID"


def test_inputs_over_the_cap_are_refused(settings: Any) -> None:
    settings.BATON_TRANSFORM_MAX_INPUT_BYTES = 1000
    big = "x" * 1001
    assert error_code(xml_to_json, {"xml": f"<a>{big}</a>"}) == "TRANSFORM_TOO_LARGE"
    assert error_code(csv_to_json, {"csv": big}) == "TRANSFORM_TOO_LARGE"
    assert error_code(json_to_csv, {"rows": [{"a": big}]}) == "TRANSFORM_TOO_LARGE"
    assert error_code(jmespath_search, {"expression": "a", "value": {"a": big}}) == (
        "TRANSFORM_TOO_LARGE"
    )
    assert error_code(json_to_xml, {"value": {"a": big}}) == "TRANSFORM_TOO_LARGE"


def test_csv_options_and_errors() -> None:
    rows = [["a", "b;c"], ["1", 'say "hi"']]
    text = json_to_csv({"rows": rows, "delimiter": ";", "columns": ["x", "y"]}, CALL)
    assert text == 'x;y\na;"b;c"\n1;"say ""hi"""\n'
    assert csv_to_json({"csv": text, "delimiter": ";", "header": False}, CALL) == [
        ["x", "y"],
        ["a", "b;c"],
        ["1", 'say "hi"'],
    ]
    # Short rows are padded; nested values are written as JSON.
    assert csv_to_json({"csv": "a,b\n1\n"}, CALL) == [{"a": "1", "b": ""}]
    assert json_to_csv({"rows": [{"a": {"b": 1}}]}, CALL) == 'a\n"{""b"": 1}"\n'
    assert error_code(json_to_csv, {"rows": [{"a": 1}, [1]]}) == "TRANSFORM_INVALID"
    assert error_code(json_to_csv, {"rows": "nope"}) == "TRANSFORM_INVALID"
    assert error_code(csv_to_json, {"csv": "a", "delimiter": "\n"}) == "TRANSFORM_INVALID"


def test_jmespath_errors() -> None:
    assert jmespath_search({"expression": "a.b", "value": {"a": {"b": [1]}}}, CALL) == [1]
    assert jmespath_search({"expression": "missing", "value": {}}, CALL) is None
    assert error_code(jmespath_search, {"expression": "a[", "value": {}}) == "TRANSFORM_INVALID"
    assert error_code(jmespath_search, {"expression": "", "value": {}}) == "TRANSFORM_INVALID"
    assert error_code(jmespath_search, {"expression": "abs(a)", "value": {"a": "x"}}) == (
        "TRANSFORM_INVALID"
    )


@pytest.mark.parametrize(
    "expression",
    [
        # 107 characters that stand for 4**26 copies of the value as JSON.
        " | ".join(["[@,@,@,@]"] * 9),
        # Each step builds a real list four times longer than the last.
        " | ".join(["[@,@,@,@][]"] * 16),
        # Each step builds a real text four times longer than the last.
        " | ".join(["join('', [@,@,@,@])"] * 16),
        "to_string([" + " | ".join(["[@,@,@,@]"] * 20) + "])",
    ],
)
def test_an_expression_that_builds_too_much_ends_with_transform_too_large(
    expression: str,
) -> None:
    value: Any = ["x" * 90] if "join" not in expression else "x" * 90
    assert error_code(jmespath_search, {"expression": expression, "value": value}) == (
        "TRANSFORM_TOO_LARGE"
    )


def test_the_jmespath_budget_leaves_ordinary_expressions_alone() -> None:
    orders = [{"id": i, "total": i * 10, "tags": ["a", "b"]} for i in range(1000)]
    total = jmespath_search({"expression": "sum([*].total)", "value": orders}, CALL)
    assert total == sum(i * 10 for i in range(1000))
    tags = jmespath_search({"expression": "[*].tags[]", "value": orders}, CALL)
    assert len(tags) == 2000
    assert jmespath_search({"expression": "join(',', [*].tags[0])", "value": orders[:2]}, CALL) == (
        "a,a"
    )
    assert jmespath_search({"expression": "to_string(@)", "value": [1, 2]}, CALL) == "[1,2]"
