"""Request parsing. Postgres cannot store NUL characters in text or JSONB, so the API replaces
them in every JSON body and query filter with U+FFFD (the replacement character) instead of
failing on them later. Replacing rather than dropping keeps every string's length, so length
limits mean what the OpenAPI schema says."""
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.parsers import JSONParser

from engine.jsonable import check_json_depth, too_deep

NUL_REPLACEMENT = "\ufffd"


def without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", NUL_REPLACEMENT)
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


class JSONWithoutNulParser(JSONParser):
    """Also refuses bodies nested deeper than BATON_MAX_JSON_DEPTH (a 400 naming the limit)
    before anything walks them: the decoder itself stops at Python's recursion limit."""

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep("The JSON body") from None
        check_json_depth(value, "The JSON body")
        return without_nul(value)


class TextField(serializers.CharField):
    """A CharField for query filters that replaces NUL characters instead of rejecting them; a
    blank filter (after trimming whitespace) filters nothing rather than being an error."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators
                           if type(v).__name__ != "ProhibitNullCharactersValidator"]

    def to_internal_value(self, data: Any) -> str:
        return str(super().to_internal_value(without_nul(data)))
