"""SpiffArena's forms submit null for an optional checkbox never ticked; a required one must
still be a boolean."""

import pytest

from engine.exceptions import InvalidInput
from engine.forms import validate_json_schema_submission

FORM = {
    "type": "json-schema",
    "schema": {
        "type": "object",
        "required": ["agree"],
        "properties": {
            "agree": {"type": "boolean"},
            "bruschetta": {"type": "boolean", "title": "Bruschetta"},
            "extras": {
                "type": "object",
                "properties": {"napkins": {"type": "boolean"}},
            },
        },
    },
}


def test_null_is_accepted_for_an_optional_boolean_at_any_depth() -> None:
    data = {"agree": True, "bruschetta": None, "extras": {"napkins": None}}
    assert validate_json_schema_submission(FORM, data) == data


def test_null_is_refused_for_a_required_boolean_and_a_string_for_an_optional_one() -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_json_schema_submission(FORM, {"agree": None, "bruschetta": "yes"})
    assert set(refused.value.errors) == {"agree", "bruschetta"}
