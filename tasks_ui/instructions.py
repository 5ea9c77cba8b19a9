"""Task instructions (SpiffArena's `instructionsForEndUser`): `{{ variable }}` placeholders
filled from the task's data, Markdown rendered, and the HTML sanitised to an allow-list."""

import html
import re
from typing import Any

import markdown
import nh3

PLACEHOLDER = re.compile(r"{{\s*([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)\s*}}")
ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "b",
    "i",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "hr",
}


def _lookup(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""
        value = value[part]
    return value


_EXTENSIONS = ["tables", "sane_lists"]
# The characters Python-Markdown (with these extensions) lets a backslash make literal.
_MARKDOWN_SPECIAL = re.compile(
    "([" + re.escape("".join(markdown.Markdown(extensions=_EXTENSIONS).ESCAPED_CHARS)) + "])"
)


def _as_text(value: Any) -> str:
    """A value as literal text in Markdown: whatever a starter typed (`[x](http://...)`,
    `<b>`, `# title`, a line of `===`) stays those characters on the line of its placeholder,
    never a link, markup, a heading or a block of its own."""
    one_line = " ".join(str(value).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def render_instructions(text: str, data: dict[str, Any]) -> str:
    """Safe HTML for `text`: the designer's Markdown, with placeholders replaced by the values
    as literal text (never Markdown or HTML of their own)."""
    if not text:
        return ""
    filled = PLACEHOLDER.sub(lambda m: _as_text(_lookup(data, m.group(1))), text)
    rendered = markdown.markdown(filled, extensions=_EXTENSIONS)
    return nh3.clean(
        rendered,
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
    )
