"""Camunda 7 expressions (`${...}` and `#{...}`) read as Python: the one rule for conditions,
assignments, timers, connector and call activity parameters.

The inside of the wrapping is a Python expression over the instance data, with the JUEL
operators that Python spells differently translated token by token (Python's `tokenize`):
`&&` `||` `!` `eq` `ne` `lt` `gt` `le` `ge` `div` `mod` `empty` `null` `true` `false`
(`and` `or` `not` are the same words). JUEL's prefix operators (`!`, `not`, `empty`) bind
tighter than a comparison, Python's `not` looser, so their operand is put in parentheses.
What does not translate to valid Python raises `ExpressionNotSupported`, which the deploy
reports. The translated expression runs as any other: in the script sandbox.
"""

import io
import tokenize
from functools import lru_cache

WRAPPINGS = ("${", "#{")

SUPPORTED = (
    "Baton reads the inside of ${...} as a Python expression over the instance data, with "
    "JUEL's && || ! eq ne lt gt le ge div mod and or not empty null true false translated"
)

_WORDS = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "gt": ">",
    "le": "<=",
    "ge": ">=",
    "div": "/",
    "mod": "%",
    "null": "None",
    "true": "True",
    "false": "False",
}
_PREFIX = {"!", "not", "empty"}
_OPENING = {"(": ")", "[": "]", "{": "}"}
_SKIPPED = {tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT}


class ExpressionNotSupported(ValueError):
    pass


def is_wrapped(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith(WRAPPINGS) and stripped.endswith("}")


def expression_source(text: str) -> str | None:
    """The Python source of a `${...}` / `#{...}` value, None for anything else (a literal)."""
    if not isinstance(text, str) or not is_wrapped(text):
        return None
    return translate(text.strip()[2:-1])


def python_source(text: str) -> str:
    """The Python source of an expression: translated when wrapped, else as written."""
    source = expression_source(text)
    return text if source is None else source


@lru_cache(maxsize=4096)
def translate(juel: str) -> str:
    """The Python source for the inside of a `${...}`; raise `ExpressionNotSupported`."""
    tokens = _tokens(juel.strip())
    if not tokens:
        raise ExpressionNotSupported(f"The expression is empty. {SUPPORTED}.")
    words, _ = _translated(tokens, 0)
    source = " ".join(words)
    try:
        compile(source, "<expression>", "eval")
    except (SyntaxError, ValueError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise ExpressionNotSupported(
            f"{juel.strip()!r} is not a valid expression ({reason}). {SUPPORTED}."
        ) from None
    return source


def _tokens(source: str) -> list[str]:
    try:
        found = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as exc:
        raise ExpressionNotSupported(f"{source!r} cannot be read: {exc}. {SUPPORTED}.") from None
    tokens = []
    for token in found:
        if token.type in _SKIPPED or token.type == tokenize.COMMENT or not token.string.strip():
            continue
        tokens.append(token.string)
    return tokens


def _translated(tokens: list[str], start: int, stop: int | None = None) -> tuple[list[str], int]:
    """Python words for tokens[start:stop] and where they end."""
    stop = len(tokens) if stop is None else stop
    words: list[str] = []
    i = start
    while i < stop:
        word = tokens[i]
        pair = tokens[i : i + 2]
        if pair in (["&", "&"], ["|", "|"]):
            words.append("and" if word == "&" else "or")
            i += 2
        elif word in _PREFIX:
            operand, i = _operand(tokens, i + 1, stop)
            if word == "empty":
                words.append(f"({operand} in (None, '', [], {{}}))")
            else:
                words.append(f"(not {operand})")
        else:
            words.append(_WORDS.get(word, word))
            i += 1
    return words, i


def _operand(tokens: list[str], i: int, stop: int) -> tuple[str, int]:
    """The operand of a prefix operator at tokens[i]: a name, literal or bracketed group with
    its `.name`, `[...]` and `(...)` trailers, or another prefix operation."""
    if i >= stop:
        raise ExpressionNotSupported(f"An operator lacks its operand. {SUPPORTED}.")
    if tokens[i] in _PREFIX:
        words, end = _translated(tokens, i, _operand_end(tokens, i, stop))
        return " ".join(words), end
    end = _operand_end(tokens, i, stop)
    words, _ = _translated(tokens, i, end)
    return " ".join(words), end


def _operand_end(tokens: list[str], i: int, stop: int) -> int:
    while i < stop and tokens[i] in _PREFIX:
        i += 1
    i = _after_group(tokens, i, stop) if i < stop and tokens[i] in _OPENING else i + 1
    while i < stop:
        if tokens[i] == "." and i + 1 < stop:
            i += 2
        elif tokens[i] in ("[", "("):
            i = _after_group(tokens, i, stop)
        else:
            break
    return min(i, stop)


def _after_group(tokens: list[str], i: int, stop: int) -> int:
    depth = 0
    while i < stop:
        if tokens[i] in _OPENING:
            depth += 1
        elif tokens[i] in _OPENING.values():
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ExpressionNotSupported(f"A bracket is not closed. {SUPPORTED}.")
