"""Django forms built from JSON Schema + react-jsonschema-form UI schema (SpiffArena forms):
every example form of the shared SpiffArena corpus, and small hand-written schemas for the
constructs the corpus does not use; plus the API-side check `validate_json_schema_submission`.
Pure Python: no database."""

import datetime
import json
import re
from collections.abc import Callable, Iterable
from html import escape as html_escape
from pathlib import Path
from typing import Any, cast

import pytest
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone
from jsonschema import Draft7Validator
from jsonschema.validators import validator_for

from engine.exceptions import InvalidInput
from engine.forms import (
    json_schema_errors,
    prepare_json_schema,
    validate_json_schema_submission,
)
from tests.helpers import SHARED_DIR, SPIFF_EXAMPLES
from webforms.json_schema import (
    IsoDateField,
    JsonChoiceField,
    JsonMultipleChoiceField,
    JsonSchemaForm,
    JsonValueField,
    LinesField,
    build_form,
    form_class_for,
    initial_for,
    validate_form,
    variables_from,
)

SEP = " \u203a "  # between the parts of a nested field's label
# Collected by name, found through the `shared_dir` fixture (which decides skip or fail).
CORPUS_SCHEMAS = (
    sorted(
        p.relative_to(SHARED_DIR / SPIFF_EXAMPLES)
        for p in (SHARED_DIR / SPIFF_EXAMPLES).rglob("*-schema.json")
    )
    if (SHARED_DIR / SPIFF_EXAMPLES).is_dir()
    else []
)
Example = tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]


def corpus_params() -> list[Any]:
    if not CORPUS_SCHEMAS:
        return [pytest.param(Path("missing-corpus"), id="missing-corpus")]
    return [pytest.param(path, id=str(path)) for path in CORPUS_SCHEMAS]


@pytest.fixture
def spiff_examples(shared_dir: Path) -> Path:
    return shared_dir / SPIFF_EXAMPLES


def load_example(path: Path) -> Example:
    """A corpus form: its schema, its UI schema (if any) and its example task data."""
    stem = str(path)[: -len("-schema.json")]
    ui_path, data_path = Path(f"{stem}-uischema.json"), Path(f"{stem}-exampledata.json")
    schema = json.loads(path.read_text())
    ui_schema = json.loads(ui_path.read_text()) if ui_path.exists() else None
    example = json.loads(data_path.read_text()) if data_path.exists() else {}
    return schema, ui_schema, example


@pytest.fixture
def corpus(spiff_examples: Path) -> Callable[[str], Example]:
    """`corpus("0-2-basic-example/norris")`: that example form of the corpus."""
    return lambda name: load_example(spiff_examples / f"{name}-schema.json")


def choices_of(field: forms.Field) -> list[tuple[Any, Any]]:
    """The (value, label) pairs of a choice field (the stubs type `choices` as a union)."""
    assert isinstance(field, forms.ChoiceField)
    return list(cast(Iterable[tuple[Any, Any]], field.choices))


def check_schema(form_class: type[JsonSchemaForm], variables: dict[str, Any]) -> None:
    """Independently of the module: the variables are JSON and the schema accepts them."""
    json.dumps(variables)
    cls = validator_for(form_class.schema, default=Draft7Validator)
    cls(form_class.schema, format_checker=cls.FORMAT_CHECKER).validate(variables)


def assert_accessible(form: forms.Form) -> str:
    """Every visible field has a label tied to its input, or a legend for its group of
    inputs (each with its own label); returns the HTML."""
    html = form.as_div()
    assert str(form) == html
    for bound in form.visible_fields():
        label = html_escape(str(bound.label), quote=True)
        assert bound.label, bound.name
        if bound.field.widget.use_fieldset:
            assert f"<legend>{label}</legend>" in html, bound.name
            for index in range(len(bound.subwidgets)):
                assert f'<label for="{bound.auto_id}_{index}">' in html, (bound.name, index)
        else:
            assert f'<label for="{bound.id_for_label}">{label}</label>' in html, bound.name
            assert f'id="{bound.id_for_label}"' in html, bound.name
        if bound.help_text and not bound.field.widget.use_fieldset:
            described = rf'aria-describedby="[^"]*\b{re.escape(bound.auto_id)}_helptext\b'
            assert re.search(described, html), bound.name
    return html


def valid_post(form_class: type[JsonSchemaForm], **overrides: Any) -> dict[str, Any]:  # noqa: C901 -- one decision table, clearer whole than split
    """Form data that every field accepts, built from the fields the schema produced."""
    post: dict[str, Any] = {}
    for name, field in form_class.base_fields.items():
        if field.disabled:
            continue
        if isinstance(field, JsonMultipleChoiceField):
            keys = [key for key, _ in choices_of(field)]
            post[name] = keys[: max(field.min_items or 0, 1)]
        elif isinstance(field, JsonChoiceField):
            post[name] = next(key for key, _ in choices_of(field) if key != "")
        elif isinstance(field, forms.BooleanField):
            post[name] = "on"
        elif isinstance(field, forms.IntegerField):
            post[name] = str(field.min_value if field.min_value is not None else 7)
        elif isinstance(field, forms.DecimalField):
            post[name] = str(field.min_value if field.min_value is not None else "12.5")
        elif isinstance(field, IsoDateField):
            post[name] = "2030-01-31"
        elif isinstance(field, forms.EmailField):
            post[name] = "someone@example.com"
        elif isinstance(field, LinesField):
            post[name] = "one\ntwo"
        elif isinstance(field, JsonValueField):
            post[name] = "null"
        elif isinstance(field, forms.CharField):
            post[name] = "x" * max(field.min_length or 0, 5)
    post.update(overrides)
    return post


# --- the shared corpus: every SpiffArena example form -----------------------------------


@pytest.mark.parametrize("schema_path", corpus_params())
def test_corpus_form_builds_and_renders_accessibly(schema_path: Path, spiff_examples: Path) -> None:
    schema, ui_schema, example = load_example(spiff_examples / schema_path)
    for task_data in (None, example):  # with and without the task data the form expects
        form_class = form_class_for(schema, ui_schema, task_data=task_data)
        properties = schema["properties"]
        assert form_class.base_fields, schema_path
        assert {plan.path[0] for plan in form_class.plans.values()} == set(properties)
        assert_accessible(form_class())
        form = build_form(schema, ui_schema, task_data or {})
        assert_accessible(form)
        bound = form_class(data={})
        bound.is_valid()
        assert_accessible(bound)  # with error lists


@pytest.mark.parametrize("schema_path", corpus_params())
def test_corpus_form_accepts_valid_data(schema_path: Path, spiff_examples: Path) -> None:
    schema, ui_schema, example = load_example(spiff_examples / schema_path)
    form_class = form_class_for(schema, ui_schema, task_data=example)
    overrides = {
        "telephone": "+1 540-555-1234",  # 1-2-forms: a pattern
        "tasks": '[{"title": "Write the tests", "done": true}]',  # 2-5-loops: objects
    }
    post = valid_post(
        form_class, **{k: v for k, v in overrides.items() if k in form_class.base_fields}
    )
    form = form_class(data=post, initial=initial_for(schema, ui_schema, example))
    variables = validate_form(form)
    assert variables is not None, form.errors.as_data()
    assert form.variables == variables
    check_schema(form_class, variables)
    assert variables == variables_from(form_class, form.cleaned_data)


@pytest.mark.parametrize("schema_path", corpus_params())
def test_corpus_initial_values_come_from_the_example_data(
    schema_path: Path, spiff_examples: Path
) -> None:
    schema, ui_schema, example = load_example(spiff_examples / schema_path)
    form_class = form_class_for(schema, ui_schema, task_data=example)
    initial = initial_for(schema, ui_schema, example)
    for name, plan in form_class.plans.items():
        value: Any = example
        for part in plan.path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            assert initial[name] == value, name
        elif name in initial:  # from the schema's default
            assert form_class.base_fields[name].initial == initial[name]


def test_corpus_examples_are_all_there(spiff_examples: Path) -> None:
    assert len(list(spiff_examples.rglob("*-schema.json"))) >= 21


def test_norris_radio_booleans_submit_booleans(corpus: Callable[[str], Example]) -> None:
    schema, ui_schema, example = corpus("0-2-basic-example/norris")
    form = build_form(schema, ui_schema, example)
    assert isinstance(form.fields["pushups"].widget, forms.RadioSelect)
    assert [label for _, label in choices_of(form.fields["pushups"])] == ["True", "False"]
    html = assert_accessible(form)
    assert re.search(r'value="true" required id="id_thanos_0" checked', html)  # example data
    form = build_form(
        schema,
        ui_schema,
        example,
        data={"pushups": "true", "thanos": "false", "bulletproof": "true"},
    )
    assert validate_form(form) == {"pushups": True, "thanos": False, "bulletproof": True}
    form = build_form(schema, ui_schema, example, data={"pushups": "true", "thanos": "maybe"})
    assert validate_form(form) is None
    assert form.errors["bulletproof"] == ["This field is required."]
    assert "Select a valid choice" in form.errors["thanos"][0]
    assert "pushups" not in form.errors


def test_forms_example_constraints_and_messages(corpus: Callable[[str], Example]) -> None:
    schema, ui_schema, example = corpus("1-basic-concepts/1-2-forms/test")
    form_class = form_class_for(schema, ui_schema, task_data=example)
    fields = form_class.base_fields
    assert list(fields)[:2] == ["firstName", "lastName"]  # ui:order, then "*"
    assert fields["age"].label == "Age of person"  # ui:title
    assert "(earth year)" in fields["age"].help_text  # ui:description
    assert isinstance(fields["bio"].widget, forms.Textarea)
    assert fields["telephone"].widget.input_type == "tel"
    assert fields["delivery_date"].widget.input_type == "date"
    hated = [key for key, _ in choices_of(fields["hatedFruit"])]
    assert hated == ["", "apples", "oranges", "bananas"]
    assert not fields["firstName"].required  # ui:emptyValue: always present

    good = valid_post(
        form_class,
        telephone="+91 (123) 456-7890",
        firstName="",
        hatedFruit="bananas",
        delivery_date="2031-02-03",
        age="42",
    )
    variables = validate_form(form_class(data=good))
    assert variables is not None
    assert variables["firstName"] == ""  # the empty value
    assert variables["age"] == 42
    assert variables["hatedFruit"] == "bananas"
    assert variables["delivery_date"] == "2031-02-03"
    check_schema(form_class, variables)

    bad = dict(
        good,
        lastName="",
        bio="too short",
        age="17",
        telephone="1-800-kick-ass",
        favoriteFruit="kiwis",
        delivery_date="2031-02-30",
    )
    form = form_class(data=bad)
    assert validate_form(form) is None
    assert form.errors["lastName"] == ["This field is required."]
    assert form.errors["bio"] == ["Ensure this value has at least 10 characters (it has 9)."]
    assert form.errors["age"] == ["Ensure this value is greater than or equal to 18."]
    assert form.errors["telephone"] == [schema["properties"]["telephone"]["validationErrorMessage"]]
    assert "Select a valid choice" in form.errors["favoriteFruit"][0]
    assert form.errors["delivery_date"] == [
        schema["properties"]["delivery_date"]["validationErrorMessage"]
    ]
    assert set(form.errors) == {
        "lastName",
        "bio",
        "age",
        "telephone",
        "favoriteFruit",
        "delivery_date",
    }
    assert_accessible(form)
    form = form_class(data=dict(good, age="eighty"))
    assert validate_form(form) is None
    assert form.errors["age"] == ["Enter a whole number."]


def test_dynamic_options_come_from_task_data(corpus: Callable[[str], Example]) -> None:
    schema, ui_schema, example = corpus("1-basic-concepts/1-1-content/a-simple-form")
    form_class = form_class_for(schema, ui_schema, task_data=example)
    color = form_class.base_fields["color"]
    assert isinstance(color, JsonChoiceField)
    assert ("#ffd700", "Banana Mania") in choices_of(color)
    post = {"first_name": "Chuck", "color": "#ffd700", "is_joke": "false"}
    assert validate_form(form_class(data=post)) == {
        "first_name": "Chuck",
        "color": "#ffd700",
        "is_joke": False,
    }
    form = form_class(data=dict(post, color="#000000"))
    assert validate_form(form) is None
    assert form.errors["color"] == ["Please select a color"]  # validationErrorMessage
    form = form_class(data=dict(post, color=""))
    assert validate_form(form) is None
    assert form.errors["color"] == ["This field is required."]
    # Without the task data the placeholder cannot be filled: a text field, not a crash.
    plain = form_class_for(schema, ui_schema)
    assert type(plain.base_fields["color"]) is forms.CharField
    assert validate_form(plain(data=dict(post, color="any colour"))) is not None


def test_pizza_checkboxes_need_one_topping(corpus: Callable[[str], Example]) -> None:
    schema, ui_schema, _ = corpus("1-basic-concepts/1-4-decisions/select-a-pizza")
    form_class = form_class_for(schema, ui_schema)
    toppings = form_class.base_fields["toppings"]
    assert isinstance(toppings.widget, forms.CheckboxSelectMultiple)
    assert "Select at least 1." in toppings.help_text
    post = {"size": "Large", "toppings": ["Spam", "Squash"]}
    assert validate_form(form_class(data=post)) == post
    form = form_class(data={"size": "Huge"})
    assert validate_form(form) is None
    assert "Select a valid choice" in form.errors["size"][0]
    assert form.errors["toppings"] == ["Select at least 1 item."]
    form = form_class(data={"size": "Large", "toppings": ["Spam", "Pineapple"]})
    assert validate_form(form) is None
    assert "Pineapple is not one of the available choices" in form.errors["toppings"][0]


def test_trivia_number_is_a_json_number(corpus: Callable[[str], Example]) -> None:
    schema, ui_schema, _ = corpus("1-basic-concepts/1-3-scripts/trivia-quiz")
    form_class = form_class_for(schema, ui_schema)
    post = {"flag_stars": "12", "longest_river": "Nile", "woman_nobel": "Marie Curie"}
    assert validate_form(form_class(data=post)) == dict(post, flag_stars=12)
    assert validate_form(form_class(data=dict(post, flag_stars="12.5"))) == dict(
        post, flag_stars=12.5
    )
    form = form_class(data=dict(post, flag_stars="twelve"))
    assert validate_form(form) is None
    assert form.errors["flag_stars"] == ["Enter a number."]


def test_waiter_order_is_nested(corpus: Callable[[str], Example]) -> None:
    schema, ui_schema, example = corpus("2-in-depth/2-4-messages/waiter/order")
    form = build_form(schema, ui_schema, example)
    assert list(form.fields) == ["order.table_number", "order.drink", "order.meal"]
    assert form.fields["order.table_number"].label == f"Order{SEP}Table number"
    assert form.fields["order.table_number"].help_text == "The table number of the order"
    assert form.fields["order.table_number"].required
    assert form.initial == {"order.table_number": 12, "order.drink": "Sprite"}
    form_class = type(form)
    assert validate_form(form_class(data={"order.table_number": "3", "order.drink": "Tea"})) == {
        "order": {"table_number": 3, "drink": "Tea"}
    }
    form = form_class(data={"order.table_number": "0"})
    assert validate_form(form) is None
    assert form.errors == {
        "order.table_number": ["Ensure this value is greater than or equal to 1."]
    }
    form = form_class(data={"order.drink": "Tea"})
    assert validate_form(form) is None
    assert form.errors == {"order.table_number": ["This field is required."]}


def test_composer_labels_use_the_titles(corpus: Callable[[str], Example]) -> None:
    schema, ui_schema, example = corpus("2-in-depth/2-5-loops/multi-instance/composer")
    form = build_form(schema, ui_schema, example)
    assert form.fields["composer_in_form.composer"].label == f"Composers{SEP}Composer"
    assert form.initial == {"composer_in_form.composer": "Wolfgang"}
    assert validate_form(type(form)(data={"composer_in_form.genre": "Opera"})) == {
        "composer_in_form": {"genre": "Opera"}
    }


def test_array_of_objects_is_a_json_text_area(corpus: Callable[[str], Example]) -> None:
    schema, ui_schema, example = corpus("2-in-depth/2-5-loops/looping-tasks/sad")
    form = build_form(schema, ui_schema, example)
    tasks = form.fields["tasks"]
    assert isinstance(tasks, JsonValueField)
    assert "JSON list of objects" in tasks.help_text
    assert json.loads(form["tasks"].value()) == [{"done": False}]
    form_class = type(form)
    good = [{"title": "Buy milk", "done": False}]
    assert validate_form(form_class(data={"tasks": json.dumps(good)})) == {"tasks": good}
    form = form_class(data={"tasks": "[{"})
    assert validate_form(form) is None
    assert form.errors["tasks"] == ["Enter a valid JSON."]
    form = form_class(data={"tasks": '[{"title": "ok"}, {"done": "no"}]'})
    assert validate_form(form) is None
    assert sorted(map(str, form.errors["tasks"])) == [
        "Item 2: Enter a valid yes/no value.",
        "Item 2: This field is required.",
    ]


def test_booleans_are_always_submitted(corpus: Callable[[str], Example]) -> None:
    schema, ui_schema, example = corpus("2-in-depth/2-3-sub-processes/payment-mode")
    form = build_form(schema, ui_schema, example)
    assert form.fields["pay_on_delivery"].initial is True
    assert form.initial == {"pay_on_delivery": True}
    assert validate_form(type(form)(data={})) == {"pay_on_delivery": False, "pay_online": False}


# --- hand-written schemas ------------------------------------------------------------------

PERSON = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Person",
    "type": "object",
    "required": ["name", "home"],
    "definitions": {
        "address": {
            "type": "object",
            "required": ["street"],
            "properties": {
                "street": {"type": "string", "title": "Street", "maxLength": 20},
                "city": {"type": "string", "default": "Springfield"},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            },
        },
    },
    "properties": {
        "name": {"type": "string", "title": "Name", "description": "<b>Full</b> name"},
        "home": {"$ref": "#/definitions/address", "title": "Home"},
        "work": {"$ref": "#/definitions/address"},
        "tags": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[a-z]+$"},
            "maxItems": 3,
        },
        "scores": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        "size": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5},
        "kind": {"type": "integer", "enum": [1, 2, 3], "enumNames": ["One", "Two", "Three"]},
        "agree": {"type": "boolean", "const": True, "title": "I agree"},
        "newsletter": {"type": "boolean"},
        "email": {"type": "string", "format": "email"},
        "born": {"type": "string", "format": "date"},
        "meta": {"type": "object"},
        "either": {
            "oneOf": [
                {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
                {"type": "object", "required": ["b"], "properties": {"b": {"type": "string"}}},
            ]
        },
    },
}
PERSON_UI = {
    "ui:order": ["name", "*", "agree"],
    "home": {"ui:order": ["city", "*"]},
    "name": {
        "ui:help": "As on your passport",
        "ui:placeholder": "Jane Doe",
        "ui:autocomplete": "name",
    },
    "kind": {"ui:widget": "radio"},
}
PERSON_POST = {
    "name": "Ada",
    "home.street": "1 Main St",
    "home.city": "Paris",
    "work.street": "2 Side St",
    "scores": "1\n\n2\n",
    "agree": "on",
    "tags": "abc",
}


def person() -> type[JsonSchemaForm]:
    return form_class_for(PERSON, PERSON_UI)


def test_nested_objects_and_references_are_flattened() -> None:
    form_class = person()
    names = list(form_class.base_fields)
    assert names[0] == "name" and names[-1] == "agree"
    assert names[1:4] == ["home.city", "home.street", "home.zip"]
    fields = form_class.base_fields
    assert fields["home.street"].label == f"Home{SEP}Street"
    assert fields["work.street"].label == f"Work{SEP}Street"
    assert fields["home.street"].required and fields["work.street"].required
    assert isinstance(fields["home.street"], forms.CharField)
    assert fields["home.street"].max_length == 20
    assert fields["home.city"].initial == "Springfield"
    assert isinstance(fields["meta"], JsonValueField)  # a free-form object
    assert isinstance(fields["either"], JsonValueField)  # a oneOf of objects
    assert form_class.title == "Person"
    variables = validate_form(form_class(data=PERSON_POST))
    assert variables == {
        "name": "Ada",
        "home": {"street": "1 Main St", "city": "Paris"},
        "work": {"street": "2 Side St"},
        "tags": ["abc"],
        "scores": [1, 2],
        "agree": True,
        "newsletter": False,
    }
    check_schema(form_class, variables)


def test_help_texts_placeholders_and_escaping() -> None:
    html = assert_accessible(person()())
    assert "&lt;b&gt;Full&lt;/b&gt; name As on your passport" in html
    assert "<b>Full</b>" not in html
    assert 'placeholder="Jane Doe"' in html and 'autocomplete="name"' in html
    assert "Enter one whole number per line (at least 1)." in html


def test_errors_land_on_the_right_fields() -> None:
    form_class = person()
    post = dict(
        PERSON_POST,
        **{
            "home.street": "x" * 21,
            "home.zip": "123",
            "tags": "abc\nxyz\nmore\nfour",
            "scores": "1\ntwo",
            "size": "0",
            "kind": "4",
            "email": "nope",
            "born": "1990-02-31",
            "meta": "[1, 2]",
        },
    )
    del post["agree"]
    form = form_class(data=post)
    assert validate_form(form) is None
    assert form.errors["home.street"] == [
        "Ensure this value has at most 20 characters (it has 21)."
    ]
    assert form.errors["home.zip"] == ["Enter a value in the expected format."]
    assert form.errors["tags"] == ["Enter at most 3 items."]
    assert form.errors["scores"] == ["Line 2: enter a whole number."]
    assert form.errors["size"] == ["Ensure this value is greater than 0."]
    assert "Select a valid choice" in form.errors["kind"][0]
    assert form.errors["email"] == ["Enter a valid email address."]
    assert form.errors["born"] == ["Enter a valid date."]
    assert form.errors["agree"] == ["This field is required."]
    assert form.errors["meta"] == ["Enter a valid object."]
    assert "name" not in form.errors and NON_FIELD_ERRORS not in form.errors
    form = form_class(data=dict(PERSON_POST, size="0.3"))
    assert validate_form(form) is None
    assert form.errors == {"size": ["Ensure this value is a multiple of 0.5."]}
    form = form_class(data=dict(PERSON_POST, tags="abc\nNOPE"))
    assert validate_form(form) is None
    assert form.errors == {"tags": ["Line 2: Enter a value in the expected format."]}


def test_typed_choices_numbers_and_lists_come_back_typed() -> None:
    form_class = person()
    kind = form_class.base_fields["kind"]
    assert isinstance(kind.widget, forms.RadioSelect)
    assert choices_of(kind) == [("1", "One"), ("2", "Two"), ("3", "Three")]
    form = form_class(
        data=dict(
            PERSON_POST,
            kind="2",
            size="2.5",
            born="1990-02-03",
            meta='{"x": [1]}',
            either='{"a": "b"}',
        )
    )
    variables = validate_form(form)
    assert variables is not None, form.errors
    assert variables["kind"] == 2
    assert variables["size"] == 2.5
    assert variables["born"] == "1990-02-03"
    assert variables["meta"] == {"x": [1]}
    assert variables["either"] == {"a": "b"}
    check_schema(form_class, variables)
    initial = initial_for(
        PERSON,
        PERSON_UI,
        {"kind": 3, "scores": [4, 5], "home": {"zip": "12345"}, "newsletter": "true"},
    )
    assert initial == {
        "kind": 3,
        "scores": [4, 5],
        "home.zip": "12345",
        "home.city": "Springfield",
        "work.city": "Springfield",
        "newsletter": True,
    }
    unbound = form_class(initial=initial)
    assert unbound["kind"].value() == "3"
    assert unbound["scores"].value() == "4\n5"


def test_variables_from_raises_validation_errors_by_field() -> None:
    form_class = person()
    cleaned = {
        "name": "Ada",
        "home.street": "1 Main St",
        "work.street": "x",
        "scores": [1],
        "agree": True,
        "tags": ["UPPER"],
    }
    with pytest.raises(ValidationError) as caught:
        variables_from(form_class, cleaned)
    assert caught.value.message_dict == {"tags": ["Line 1: Enter a value in the expected format."]}
    cleaned["tags"] = ["lower"]
    assert variables_from(form_class(), cleaned)["tags"] == ["lower"]


def test_read_only_and_hidden_fields() -> None:
    schema = {
        "type": "object",
        "required": ["amount", "reason"],
        "properties": {
            "amount": {"type": "integer", "title": "Amount", "readOnly": True},
            "requester": {"type": "object", "properties": {"name": {"type": "string"}}},
            "reason": {"type": "string"},
            "token": {"type": "string"},
            "secret": {"type": "string"},
            "approved": {"type": "boolean", "title": "Approved?"},
        },
    }
    ui = {"requester": {"ui:readonly": True}, "token": {"ui:widget": "hidden"}}
    task_data = {
        "amount": "12 EUR",
        "requester": {"name": "Bob"},
        "token": "abc",
        "form_ui_hidden_fields": ["secret"],
    }
    form = build_form(
        schema,
        ui,
        task_data,
        data={
            "amount": "999",
            "requester.name": "Mallory",
            "reason": "Trip",
            "token": "abc",
            "approved": "on",
        },
    )
    assert form.fields["amount"].disabled and form.fields["requester.name"].disabled
    assert isinstance(form.fields["token"].widget, forms.HiddenInput)
    assert isinstance(form.fields["secret"].widget, forms.HiddenInput)
    assert [b.name for b in form.visible_fields()] == [
        "amount",
        "requester.name",
        "reason",
        "approved",
    ]
    # Read-only values are passed through unchanged, even those the schema would not accept:
    # they are the task's data, which the person cannot change.
    assert validate_form(form) == {
        "amount": "12 EUR",
        "requester": {"name": "Bob"},
        "reason": "Trip",
        "token": "abc",
        "approved": True,
    }
    html = assert_accessible(form)
    assert re.search(r'<input type="number" name="amount" value="12 EUR"[^>]* disabled', html)
    assert "Approved?</label>" in html  # no label suffix after a question


def test_boolean_select_and_required_boolean_false() -> None:
    schema = {
        "type": "object",
        "required": ["ok", "sure"],
        "properties": {"ok": {"type": "boolean"}, "sure": {"type": "boolean"}},
    }
    ui = {"sure": {"ui:widget": "select"}}
    form_class = form_class_for(schema, ui)
    assert not form_class.base_fields["ok"].required  # present but may be false
    sure = choices_of(form_class.base_fields["sure"])
    assert sure == [("", "—"), ("true", "Yes"), ("false", "No")]
    assert validate_form(form_class(data={"sure": "false"})) == {"ok": False, "sure": False}
    form = form_class(data={})
    assert validate_form(form) is None
    assert form.errors == {"sure": ["This field is required."]}


def test_drafts_refs_and_unsupported_constructs_do_not_crash() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
            }
        },
        "type": "object",
        "properties": {
            "tree": {"$ref": "#/$defs/node"},
            "loop": {"$ref": "#/$defs/nowhere"},
            "nullable": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
            "both": {"allOf": [{"type": "integer"}, {"minimum": 5}]},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
            "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "anything": True,
            "never": False,
            "old": {"type": "integer", "required": True},
        },
    }
    form_class = form_class_for(schema, {"ui:order": ["missing", "tree"]})
    fields = form_class.base_fields
    assert "never" not in fields
    assert isinstance(fields["tree.children"], JsonValueField)  # recursive
    assert isinstance(fields["loop"], JsonValueField)  # unresolvable
    assert isinstance(fields["nullable"], forms.CharField) and fields["nullable"].max_length == 3
    assert isinstance(fields["both"], forms.IntegerField) and fields["both"].min_value == 5
    assert isinstance(fields["matrix"], JsonValueField)
    assert fields["old"].required  # draft 3 style "required": true
    assert_accessible(form_class())
    post = {
        "tree.label": "root",
        "tree.children": '[{"label": "leaf"}]',
        "both": "6",
        "old": "1",
        "matrix": "[[1, 2.5]]",
        "anything": '{"a": 1}',
    }
    variables = validate_form(form_class(data=post))
    assert variables == {
        "tree": {"label": "root", "children": [{"label": "leaf"}]},
        "both": 6,
        "old": 1,
        "matrix": [[1, 2.5]],
        "anything": {"a": 1},
    }
    form = form_class(data=dict(post, **{"tree.children": '[{"label": 5}]'}))
    assert validate_form(form) is None
    assert form.errors == {"tree.children": ["Item 1: Enter a valid text."]}


def test_broken_schemas_give_an_error_not_a_crash() -> None:
    remote = {
        "type": "object",
        "properties": {"x": {"$ref": "https://example.com/schema.json"}, "y": {"type": "string"}},
    }
    form_class = form_class_for(remote)
    assert isinstance(form_class.base_fields["x"], JsonValueField)
    assert validate_form(form_class(data={"y": "z"})) == {"y": "z"}  # x is not checked
    form = form_class(data={"x": "1", "y": "z"})
    assert validate_form(form) is None
    assert "cannot be applied" in form.errors[NON_FIELD_ERRORS][0]
    broken = {"type": "object", "properties": {"y": {"type": "strong"}}}
    form = form_class_for(broken)(data={"y": "z"})
    assert validate_form(form) is None
    assert "is not valid" in form.errors[NON_FIELD_ERRORS][0]
    assert form_class_for(None)().fields == {}
    assert validate_form(form_class_for({})(data={})) == {}


def test_spiffarena_date_limits() -> None:
    today = timezone.localdate()
    schema = {
        "type": "object",
        "properties": {
            "start": {"type": "string", "format": "date", "title": "Start", "minimumDate": "today"},
            "end": {"type": "string", "format": "date", "minimumDate": "field:start"},
        },
    }
    form_class = form_class_for(schema)
    tomorrow = (today + datetime.timedelta(days=1)).isoformat()
    yesterday = (today - datetime.timedelta(days=1)).isoformat()
    assert validate_form(form_class(data={"start": tomorrow, "end": tomorrow})) is not None
    form = form_class(data={"start": yesterday, "end": yesterday})
    assert validate_form(form) is None
    assert form.errors == {"start": ["Ensure this date is today or later."]}
    form = form_class(data={"start": tomorrow, "end": today.isoformat()})
    assert validate_form(form) is None
    assert form.errors == {"end": ["Ensure this date is on or after “Start”."]}


# --- API submissions -----------------------------------------------------------------------

ORDER_FORM: dict[str, Any] = {
    "type": "json-schema",
    "schema_file": "order-schema.json",
    "ui_schema_file": None,
    "schema": {
        "type": "object",
        "required": ["order"],
        "properties": {
            "order": {
                "type": "object",
                "required": ["table_number"],
                "properties": {
                    "table_number": {"type": "integer", "minimum": 1},
                    "drink": {
                        "type": "string",
                        "anyOf": ["options_from_task_data_var:drinks"],
                        "validationErrorMessage": "We do not serve that.",
                    },
                    "items": {"type": "array", "items": {"type": "string", "maxLength": 5}},
                },
            },
        },
    },
    "ui_schema": None,
}


def test_api_submission_happy_path_returns_a_copy() -> None:
    data: dict[str, Any] = {
        "order": {"table_number": 4, "items": ["soup"]},
        "note": "extra variables pass",
    }
    cleaned = validate_json_schema_submission(ORDER_FORM, data)
    assert cleaned == data
    cleaned["order"]["items"].append("more")
    assert data["order"]["items"] == ["soup"]


def test_api_submission_errors_by_dotted_path() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_json_schema_submission(
            ORDER_FORM, {"order": {"table_number": 0, "items": ["soup", "spaghetti"]}}
        )
    assert caught.value.detail == "Some fields are not valid."
    assert caught.value.errors == {
        "order.table_number": "Ensure this value is greater than or equal to 1.",
        "order.items.1": "Ensure this value has at most 5 characters.",
    }
    with pytest.raises(InvalidInput) as caught:
        validate_json_schema_submission(ORDER_FORM, {"order": {}})
    assert caught.value.errors == {"order.table_number": "This field is required."}
    with pytest.raises(InvalidInput) as caught:
        validate_json_schema_submission(ORDER_FORM, {})
    assert caught.value.errors == {"order": "This field is required."}
    with pytest.raises(InvalidInput) as caught:
        validate_json_schema_submission(ORDER_FORM, ["not", "an", "object"])
    assert caught.value.errors is None


def test_api_submission_with_task_data_options() -> None:
    drinks = {"drinks": [{"value": "tea", "label": "Tea"}, {"value": "beer", "label": "Beer"}]}
    data = {"order": {"table_number": 1, "drink": "tea"}}
    assert validate_json_schema_submission(ORDER_FORM, data, task_data=drinks) == data
    with pytest.raises(InvalidInput) as caught:
        validate_json_schema_submission(
            ORDER_FORM, {"order": {"table_number": 1, "drink": "gin"}}, task_data=drinks
        )
    assert caught.value.errors == {"order.drink": "We do not serve that."}
    # Without task data there is nothing to choose from: any text is accepted.
    assert validate_json_schema_submission(
        ORDER_FORM, {"order": {"table_number": 1, "drink": "gin"}}
    )


def test_api_submission_without_schema_and_helpers() -> None:
    assert validate_json_schema_submission({"type": "json-schema", "schema": None}, {"a": 1}) == {
        "a": 1
    }
    prepared = prepare_json_schema(ORDER_FORM["schema"], {"drinks": ["water"]})
    drink = prepared["properties"]["order"]["properties"]["drink"]
    assert drink["anyOf"] == [{"enum": ["water"], "title": "water"}]
    assert ORDER_FORM["schema"]["properties"]["order"]["properties"]["drink"]["anyOf"] == [
        "options_from_task_data_var:drinks"
    ]  # the original is untouched
    assert json_schema_errors({"type": "object", "additionalProperties": False}, {"x": 1}) == {
        "__all__": "Additional properties are not allowed ('x' was unexpected)"
    }


@pytest.mark.parametrize("schema_path", corpus_params())
def test_corpus_api_submission_accepts_what_the_form_submits(
    schema_path: Path, spiff_examples: Path
) -> None:
    schema, ui_schema, example = load_example(spiff_examples / schema_path)
    form_class = form_class_for(schema, ui_schema, task_data=example)
    post = valid_post(
        form_class,
        **{
            k: v
            for k, v in {"telephone": "+1 540-555-1234", "tasks": '[{"title": "Test"}]'}.items()
            if k in form_class.base_fields
        },
    )
    variables = validate_form(form_class(data=post))
    assert variables is not None
    form_spec = {"type": "json-schema", "schema": schema, "ui_schema": ui_schema}
    assert validate_json_schema_submission(form_spec, variables, task_data=example) == variables
