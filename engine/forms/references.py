"""Following a JSON schema's local `$ref`s with the `referencing` library, for the code that
reads a schema's shape (the fields it declares, the inputs it becomes); validation itself
leaves references to `jsonschema`."""

from typing import Any

from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7

# What `referencing` raises besides Unresolvable when a pointer walks through something that
# is no schema (a list in `definitions`, say): a form schema is the designer's, not ours.
_BROKEN = (Unresolvable, AttributeError, TypeError, ValueError, KeyError, IndexError)


class SchemaReferences:
    """The local references of one schema document (`#`, `#/definitions/x`, `#/$defs/x`);
    remote ones and anchors are not followed."""

    def __init__(self, root: dict[str, Any]) -> None:
        try:
            resource = Resource.from_contents(root, default_specification=DRAFT7)
        except _BROKEN:
            resource = DRAFT7.create_resource(root)
        self._resolver = Registry().with_resource("", resource).resolver(base_uri="")

    def target(self, ref: str) -> tuple[bool, Any]:
        """(True, what `ref` points to), or (False, None) when it cannot be followed."""
        if not ref.startswith("#") or (len(ref) > 1 and not ref.startswith("#/")):
            return False, None
        try:
            return True, self._resolver.lookup(ref).contents
        except _BROKEN:
            return False, None
