"""Making values safe to store in a JSON column."""
import json
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` as plain JSON types; anything JSON cannot express becomes its `str()`."""
    return json.loads(json.dumps(value, default=str))
