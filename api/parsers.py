"""Request parsing. Postgres cannot store NUL characters in text or JSONB, so the API replaces
them in every JSON body and query filter with U+FFFD (the replacement character) instead of
failing on them later. Replacing rather than dropping keeps every string's length, so length
limits mean what the OpenAPI schema says."""

import codecs
import json
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding  # type: ignore[attr-defined]
from rest_framework.utils.json import strict_constant

from engine.jsonable import NumberTooLong, check_json_depth, parse_json_int, too_deep

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
    before anything walks them: the decoder itself stops at Python's recursion limit. An
    integer longer than Python converts is a 400 that says so (DRF's parser, which this one
    follows otherwise, would pass on Python's advice to call sys.set_int_max_str_digits())."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        # get_encoding (not yet in the type stubs) refuses charsets that are no text
        # encodings: bz2_codec would inflate the body after its size was checked.
        reader = codecs.getreader(get_encoding(parser_context or {}))(stream)
        try:
            value = json.load(
                reader,
                parse_int=parse_json_int,
                parse_constant=strict_constant if self.strict else None,
            )
        except RecursionError:
            raise too_deep("The JSON body") from None
        except NumberTooLong as exc:
            raise ParseError(f"JSON parse error - {exc}.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        check_json_depth(value, "The JSON body")
        return without_nul(value)


class TextField(serializers.CharField):
    """A CharField for query filters that replaces NUL characters instead of rejecting them; a
    blank filter (after trimming whitespace) filters nothing rather than being an error."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)
        self.validators = [
            v for v in self.validators if type(v).__name__ != "ProhibitNullCharactersValidator"
        ]

    def to_internal_value(self, data: Any) -> str:
        return str(super().to_internal_value(without_nul(data)))
