"""Task instructions (SpiffArena's `instructionsForEndUser`): `{{ variable }}` placeholders
filled from the task's data, Markdown rendered, and the HTML sanitised to an allow-list."""
import re
from typing import Any

import markdown
import nh3

PLACEHOLDER = re.compile(r"{{\s*([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*}}")
ALLOWED_TAGS = {
    "p", "br", "strong", "em", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "hr",
}


def _lookup(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""
        value = value[part]
    return value


def render_instructions(text: str, data: dict[str, Any]) -> str:
    """Safe HTML for `text`: placeholders are replaced by the (escaped) values, never code."""
    if not text:
        return ""
    filled = PLACEHOLDER.sub(lambda m: str(_lookup(data, m.group(1))), text)
    html = markdown.markdown(filled, extensions=["tables", "sane_lists"])
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes={"a": {"href", "title"}},
                     url_schemes={"http", "https", "mailto"})
