"""Data objects under the names a modeller gives them, in the scopes BPMN gives them.

SpiffWorkflow names a data object's variable by the data object's id, which the Camunda
Modeler generates (`DataObject_0abc`): a script that writes `order` (the label of the data
object reference in the diagram) fails with "A data object could not be set". Baton names
the variable by the data object's own name when that is a Python identifier, else by the
name its references share when that is one, else by its id (SpiffArena diagrams, whose data
object ids are the variable names, read as before).

A data object belongs to the process or subprocess that declares it and is seen from every
level below (BPMN 10.4.1). The library looks one level up only, and loops for ever when the
data object is two levels up; Baton's task parsers look through every enclosing level.
"""

from collections import Counter, defaultdict
from typing import Any

from lxml import etree

from .xml import BPMN_NS

DATA_OBJECT_TAG = f"{{{BPMN_NS}}}dataObject"
REFERENCE_TAG = f"{{{BPMN_NS}}}dataObjectReference"


def _identifier(text: str | None) -> str | None:
    value = (text or "").strip()
    return value if value.isidentifier() else None


def _proposed_name(data_object: etree._Element, labels: dict[str, set[str]]) -> str:
    own = _identifier(data_object.get("name"))
    if own:
        return own
    object_id = data_object.get("id") or ""
    names = labels.get(object_id, set())
    if len(names) == 1:
        shared = _identifier(next(iter(names)))
        if shared:
            return shared
    return object_id


def data_object_names(container: etree._Element) -> dict[str, str]:
    """Data object id -> variable name, for the data objects `container` declares. Names two
    of them would share fall back to the ids. One pass over the container's references."""
    objects = list(container.iterchildren(DATA_OBJECT_TAG))
    if not objects:
        return {}
    labels: dict[str, set[str]] = defaultdict(set)
    for ref in container.iter(REFERENCE_TAG):
        label = (ref.get("name") or "").strip()
        if label:
            labels[ref.get("dataObjectRef") or ""].add(label)
    proposed = {obj.get("id") or "": _proposed_name(obj, labels) for obj in objects}
    taken = Counter(proposed.values())
    return {
        object_id: name if taken[name] == 1 else object_id for object_id, name in proposed.items()
    }


_NAMES_ATTRIBUTE = "_baton_data_object_names"


def parser_data_object_names(process_parser: Any) -> dict[str, str]:
    """`data_object_names` of a process parser's node, computed once per parser (a parser
    reads one container: every data object and every reference asks it again)."""
    names: dict[str, str] | None = getattr(process_parser, _NAMES_ATTRIBUTE, None)
    if names is None:
        names = data_object_names(process_parser.node)
        setattr(process_parser, _NAMES_ATTRIBUTE, names)
    return names


class NamedDataObjectsProcessMixin:
    """In front of a process parser: data objects under their variable names."""

    node: etree._Element

    def parse_data_object(self, obj: etree._Element) -> Any:
        spec = super().parse_data_object(obj)  # type: ignore[misc]
        spec.bpmn_id = parser_data_object_names(self).get(obj.get("id") or "", spec.bpmn_id)
        return spec


class DataObjectScopeMixin:
    """In front of a task parser: a data object reference resolves through every enclosing
    process level."""

    process_parser: Any

    def _resolve_data_object_ref(self, ref: etree._Element | None) -> Any:
        if ref is None:
            return None
        object_id = ref.get("dataObjectRef") or ""
        current = self.process_parser
        while current is not None:
            name = parser_data_object_names(current).get(object_id, object_id)
            found = current.spec.data_objects.get(name)
            if found is not None:
                return found
            current = current.parent
        return None
