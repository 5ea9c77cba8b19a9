"""Reading a JSON schema and its UI schema into the inputs a form shows: references followed
(with `referencing`), `allOf` merged, nested objects flattened, each property classified."""

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.forms import prepare_json_schema
from engine.forms.references import SchemaReferences

MAX_DEPTH = 8  # nested objects deeper than this become one JSON field
LABEL_SEPARATOR = " \u203a "  # single right-pointing angle quotation mark


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass
class Prop:
    name: str
    path: tuple[str, ...]
    schema: dict[str, Any]
    ui: dict[str, Any]
    label: str
    required: bool
    readonly: bool
    hidden: bool
    default: Any
    kind: str = "json"
    choices: list[tuple[Any, str]] | None = None
    items: dict[str, Any] = field(default_factory=dict)


@dataclass
class Layout:
    props: list[Prop] = field(default_factory=list)
    objects: list[tuple[str, ...]] = field(default_factory=list)
    names: set[str] = field(default_factory=set)


def ui_options(ui: Any) -> dict[str, Any]:
    """react-jsonschema-form's view of a UI schema node: `ui:options` merged with `ui:x`."""
    if not isinstance(ui, dict):
        return {}
    options = dict(ui["ui:options"]) if isinstance(ui.get("ui:options"), dict) else {}
    for key, value in ui.items():
        if isinstance(key, str) and key.startswith("ui:") and key != "ui:options":
            options[key[3:]] = value
    return options


def _deref(node: Any, refs: SchemaReferences, seen: frozenset[str]) -> tuple[Any, frozenset[str]]:
    """`node` with its local `$ref` followed (keywords beside the `$ref` win); MISSING for a
    reference that cannot be followed: remote, unknown, or leading back to itself."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        found, target = refs.target(ref)
        if ref in seen or not found:
            return MISSING, seen
        seen = seen | {ref}
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        if not isinstance(target, dict):
            return (siblings or target), seen
        node = {**target, **siblings}
    return node, seen


def _effective(
    node: Any, refs: SchemaReferences, seen: frozenset[str]
) -> tuple[Any, frozenset[str]]:
    """The schema a field is built from: references followed, `allOf` merged, nullable
    unions (`type: [x, "null"]`, `anyOf: [{...}, {"type": "null"}]`) reduced to `x`."""
    node, seen = _deref(node, refs, seen)
    if not isinstance(node, dict):
        return node, seen
    if isinstance(node.get("allOf"), list):
        parts = [{key: value for key, value in node.items() if key != "allOf"}]
        for part in node["allOf"]:
            resolved, seen = _effective(part, refs, seen)
            if not isinstance(resolved, dict):
                return MISSING, seen
            parts.append(resolved)
        node = _merge(parts)
    for keyword in ("anyOf", "oneOf"):
        alternatives = node.get(keyword)
        if isinstance(alternatives, list) and not _choice_list(alternatives, refs, seen):
            real = [
                a for a in alternatives if not (isinstance(a, dict) and a.get("type") == "null")
            ]
            if len(real) == 1 and len(alternatives) == 2:
                resolved, seen = _effective(real[0], refs, seen)
                if isinstance(resolved, dict):
                    rest = {key: value for key, value in node.items() if key != keyword}
                    node = _merge([rest, resolved])
    return node, seen


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**value, **merged.get("properties", {})}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            elif key not in merged:
                merged[key] = value
    return merged


def main_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        real = [k for k in kind if k != "null"]
        kind = real[0] if len(real) == 1 else None
    if isinstance(kind, str):
        return kind
    if isinstance(schema.get("properties"), dict):
        return "object"
    if "items" in schema:
        return "array"
    return None


def _value_label(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return json.dumps(value, ensure_ascii=False)


def _choice_list(
    alternatives: list[Any], refs: SchemaReferences, seen: frozenset[str]
) -> list[tuple[Any, str]] | None:
    options: list[tuple[Any, str]] = []
    for alternative in alternatives:
        option, _ = _deref(alternative, refs, seen)
        if not isinstance(option, dict):
            return None
        if "const" in option:
            value = option["const"]
        elif isinstance(option.get("enum"), list) and len(option["enum"]) == 1:
            value = option["enum"][0]
        else:
            return None
        options.append((value, str(option.get("title") or _value_label(value))))
    return options or None


def _choices(
    schema: dict[str, Any], ui: dict[str, Any], refs: SchemaReferences, seen: frozenset[str]
) -> list[tuple[Any, str]] | None:
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        names = ui.get("enumNames") or schema.get("enumNames")
        if isinstance(names, list) and len(names) == len(enum):
            return [(value, str(name)) for value, name in zip(enum, names, strict=True)]
        return [(value, _value_label(value)) for value in enum]
    for keyword in ("oneOf", "anyOf"):
        alternatives = schema.get(keyword)
        if isinstance(alternatives, list):
            options = _choice_list(alternatives, refs, seen)
            if options:
                return options
    return None


def _classify(prop: Prop, refs: SchemaReferences, seen: frozenset[str]) -> None:
    schema, widget = prop.schema, prop.ui.get("widget")
    kind = main_type(schema)
    if kind == "array":
        items, item_seen = _effective(schema.get("items"), refs, seen)
        if isinstance(items, dict):
            options = _choices(items, {}, refs, item_seen)
            if options is not None:
                prop.kind, prop.choices, prop.items = "multichoice", options, items
                return
            if main_type(items) in ("string", "integer", "number"):
                prop.kind, prop.items = "lines", items
                return
        prop.kind = "json"
        return
    options = _choices(schema, prop.ui, refs, seen)
    if kind == "boolean":
        if widget in ("radio", "select"):
            prop.kind, prop.choices = "choice", options or [(True, "Yes"), (False, "No")]
        else:
            prop.kind = "boolean"
        return
    if options is not None:
        prop.kind, prop.choices = "choice", options
        return
    if kind == "string":
        fmt = schema.get("format")
        prop.kind = (
            "date"
            if fmt == "date" or widget == "date"
            else "datetime"
            if fmt == "date-time" or widget in ("datetime", "date-time")
            else "time"
            if fmt == "time" or widget == "time"
            else "email"
            if fmt == "email" or widget == "email"
            else "url"
            if fmt in ("uri", "url") or widget in ("uri", "url")
            else "string"
        )
        return
    prop.kind = kind if kind in ("integer", "number") else "json"


def _humanize(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ")
    words = [w.lower() if w[:1].isupper() and w[1:].islower() else w for w in spaced.split()]
    text = " ".join(words) or name
    return text[:1].upper() + text[1:]


def _ordered(keys: list[str], order: Any) -> list[str]:
    """react-jsonschema-form's `ui:order`: listed keys first (`*` stands for the rest);
    unknown names are ignored and unlisted keys come last instead of failing."""
    if not isinstance(order, list):
        return keys
    wanted: list[str] = []
    for key in order:
        if (key == "*" or key in keys) and key not in wanted:
            wanted.append(key)
    rest = [key for key in keys if key not in wanted]
    if "*" in wanted:
        at = wanted.index("*")
        return [*wanted[:at], *rest, *wanted[at + 1 :]]
    return [*wanted, *rest]


def _field_name(path: tuple[str, ...], taken: set[str]) -> str:
    base = ".".join(re.sub(r"[^\w.-]", "_", part) or "_" for part in path)
    name, counter = base, 1
    while name in taken:
        counter += 1
        name = f"{base}_{counter}"
    taken.add(name)
    return name


def _walk(
    node: dict[str, Any],
    ui: Any,
    refs: SchemaReferences,
    seen: frozenset[str],
    layout: Layout,
    *,
    path: tuple[str, ...] = (),
    label: str = "",
    readonly: bool = False,
    hidden: bool = False,
    defaults: Any = None,
) -> None:
    properties = node.get("properties")
    if not isinstance(properties, dict):
        return
    ui = ui if isinstance(ui, dict) else {}
    required = {name for name in node.get("required") or [] if isinstance(name, str)}
    for key in _ordered([k for k in properties if isinstance(k, str)], ui.get("ui:order")):
        schema, sub_seen = _effective(properties[key], refs, seen)
        if schema is False:
            continue
        schema = schema if isinstance(schema, dict) else {}
        sub_ui = ui.get(key) if isinstance(ui.get(key), dict) else {}
        options = ui_options(sub_ui)
        own_label = str(options.get("title") or schema.get("title") or _humanize(key))
        default = schema.get("default", MISSING)
        if default is MISSING and isinstance(defaults, dict):
            default = defaults.get(key, MISSING)
        prop = Prop(
            name="",
            path=(*path, key),
            schema=schema,
            ui=options,
            label=f"{label}{LABEL_SEPARATOR}{own_label}" if label else own_label,
            required=key in required,
            readonly=readonly
            or bool(options.get("readonly") or options.get("disabled") or schema.get("readOnly")),
            hidden=hidden or options.get("widget") == "hidden",
            default=default,
        )
        nested = schema.get("properties")
        if (
            main_type(schema) == "object"
            and isinstance(nested, dict)
            and nested
            and len(prop.path) < MAX_DEPTH
        ):
            layout.objects.append(prop.path)
            _walk(
                schema,
                sub_ui,
                refs,
                sub_seen,
                layout,
                path=prop.path,
                label=prop.label,
                readonly=prop.readonly,
                hidden=prop.hidden,
                defaults=default if isinstance(default, dict) else None,
            )
            continue
        prop.name = _field_name(prop.path, layout.names)
        _classify(prop, refs, sub_seen)
        layout.props.append(prop)


def _hide_listed_fields(ui: dict[str, Any], task_data: Mapping[str, Any] | None) -> None:
    """SpiffArena: task data `form_ui_hidden_fields` lists (dotted) fields to hide."""
    listed = (task_data or {}).get("form_ui_hidden_fields")
    if not isinstance(listed, list):
        return
    for dotted in listed:
        if not isinstance(dotted, str) or not dotted:
            continue
        node = ui
        for part in dotted.split("."):
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node["ui:widget"] = "hidden"


def layout_of(
    schema: Any, ui_schema: Any, task_data: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], Layout]:
    prepared = prepare_json_schema(schema, task_data)
    ui = copy.deepcopy(ui_schema) if isinstance(ui_schema, dict) else {}
    _hide_listed_fields(ui, task_data)
    layout = Layout()
    refs = SchemaReferences(prepared)
    root, seen = _effective(prepared, refs, frozenset())
    if isinstance(root, dict):
        root_options = ui_options(ui)
        _walk(
            root,
            ui,
            refs,
            seen,
            layout,
            readonly=bool(root_options.get("readonly") or root_options.get("disabled")),
            defaults=root.get("default"),
        )
    return prepared, ui, layout
