"""Camunda expressions in the diagram's own language: the one rule for conditions, mappings,
timers, assignments, multi-instance and call activity parameters.

- Camunda 7 (JUEL): `${...}` or `#{...}`.
- Camunda 8 (FEEL): a text starting with `=`.
- Anything else is Python (Baton's own dialect and SpiffArena's): not read here.

Both languages are parsed with lark (one grammar each, below) into a tree that is compiled
into a small interpreter: it can read the instance's variables (names, `a.b` paths and
`a[...]` indexes on dicts and lists, never an attribute of a Python object) and call the
functions listed in `FEEL_FUNCTIONS` / `JUEL_METHODS`; nothing else. An expression has no
loops and no assignments, but FEEL filters nest (each visits its list once per item of the
filter around it), so the list items an evaluation visits are counted against `MAX_WORK`
(and `**` is bounded by `_MAX_EXPONENT`). What falls outside the subset raises
`ExpressionNotSupported` with what is supported; the deploy reports it with the element and
line.
"""

import contextvars
import math
import re
from collections import ChainMap
from collections.abc import Callable, Mapping, MutableMapping
from functools import lru_cache
from typing import Any, cast

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

WRAPPINGS = ("${", "#{")
FEEL_PREFIX = "="
MAX_LENGTH = 20_000
# How many list items one evaluation may visit in filters and list functions: nested filters
# multiply (ten items nested six deep are a million visits), so the work is counted.
MAX_WORK = 100_000
_work_left: contextvars.ContextVar[list[int]] = contextvars.ContextVar("expression_work")


def _charge(units: int) -> None:
    """Count `units` of list work against the running evaluation's budget."""
    left = _work_left.get(None)
    if left is None:
        return
    left[0] -= units
    if left[0] < 0:
        raise ExpressionFailed(
            f"the expression does too much work (more than {MAX_WORK:,} list items visited)"
        )


_MAX_DEPTH = 200
_MAX_EXPONENT = 1_000

JUEL = "JUEL"
FEEL = "FEEL"

SUPPORTED_JUEL = (
    "Baton reads JUEL's common subset in ${...}: literals ('text', 12, 1.5, true, false, "
    "null), variables and paths (order.amount, order['amount'], items[0]), == != < > <= >= "
    "and eq ne lt gt le ge, + - * / % div mod, && || ! and or not, empty, a ? b : c, lists "
    "[1, 2] and maps {'k': v}, and the methods size() length() isEmpty() contains() "
    "startsWith() endsWith() toUpperCase() toLowerCase() substring() trim() equals() "
    "containsKey() get()"
)
SUPPORTED_FEEL = (
    'Baton reads FEEL\'s common subset after =: literals ("text", 12, 1.5, true, false, '
    "null), variables and paths (order.amount, items[1], items[item > 2]), = != < > <= >=, "
    "+ - * / **, and or, between, in (lists and ranges [1..10]), if then else, lists, "
    "contexts {a: 1}, and the functions "
)


class ExpressionNotSupported(ValueError):
    """The expression cannot be read (a syntax error or something outside the subset)."""


class ExpressionFailed(ValueError):
    """The expression could not be evaluated over the given variables."""


# -- which texts are expressions ----------------------------------------------------------------


def is_wrapped(text: str) -> bool:
    """A Camunda 7 `${...}` / `#{...}` expression."""
    stripped = text.strip()
    return stripped.startswith(WRAPPINGS) and stripped.endswith("}")


def is_feel(text: str) -> bool:
    """A Camunda 8 `= ...` expression."""
    return text.strip().startswith(FEEL_PREFIX)


def language_of(text: Any) -> str | None:
    """JUEL, FEEL, or None for a text that is not a Camunda expression."""
    if not isinstance(text, str):
        return None
    if is_wrapped(text):
        return JUEL
    if is_feel(text):
        return FEEL
    return None


def is_expression(text: Any) -> bool:
    return language_of(text) is not None


# -- grammars -----------------------------------------------------------------------------------

_COMMON = r"""
    NUMBER: /\d+(\.\d+)?([eE][+-]?\d+)?/
    NAME: /[A-Za-z_$][A-Za-z0-9_$]*/
    %import common.WS
    %ignore WS
"""

_JUEL_GRAMMAR = (
    r"""
    ?start: expr
    ?expr: or_expr "?" expr ":" expr -> if_
         | or_expr
    ?or_expr: and_expr | or_expr ("||" | "or") and_expr -> or_
    ?and_expr: eq_expr | and_expr ("&&" | "and") eq_expr -> and_
    ?eq_expr: rel_expr | eq_expr EQ_OP rel_expr -> compare
    ?rel_expr: sum | rel_expr REL_OP sum -> compare
    ?sum: product | sum ADD_OP product -> arith
    ?product: unary | product MUL_OP unary -> arith
    ?unary: "-" unary -> neg
          | ("!" | "not") unary -> not_
          | "empty" unary -> empty
          | postfix
    ?postfix: atom
            | postfix "." NAME -> path
            | postfix "[" expr "]" -> index
            | postfix "." NAME "(" [args] ")" -> method
    args: expr ("," expr)*
    ?atom: NUMBER -> number
         | STRING -> string
         | "true" -> true
         | "false" -> false
         | "null" -> null
         | NAME -> var
         | FUNC "(" [args] ")" -> call
         | "(" expr ")"
         | "[" [args] "]" -> list_
         | "{" [pair ("," pair)*] "}" -> map_
    pair: (STRING | NAME | NUMBER) ":" expr
    EQ_OP: "==" | "!=" | /\beq\b/ | /\bne\b/
    REL_OP: "<=" | ">=" | "<" | ">" | /\blt\b/ | /\bgt\b/ | /\ble\b/ | /\bge\b/
    ADD_OP: "+" | "-"
    MUL_OP: "*" | "/" | "%" | /\bdiv\b/ | /\bmod\b/
    STRING: /'(?:[^'\\]|\\.)*'/ | /"(?:[^"\\]|\\.)*"/
    FUNC.2: /[A-Za-z_][A-Za-z0-9_]*(:[A-Za-z_][A-Za-z0-9_]*)?(?=\s*\()/
"""
    + _COMMON
)

_FEEL_GRAMMAR = (
    r"""
    ?start: expr
    ?expr: "if" expr "then" expr "else" expr -> if_
         | or_expr
    ?or_expr: and_expr | or_expr "or" and_expr -> or_
    ?and_expr: comparison | and_expr "and" comparison -> and_
    ?comparison: sum
               | sum COMP_OP sum -> compare
               | sum "between" sum "and" sum -> between
               | sum "in" sum -> in_
    ?sum: product | sum ADD_OP product -> arith
    ?product: power | product MUL_OP power -> arith
    ?power: unary | power "**" unary -> power
    ?unary: "-" unary -> neg
          | postfix
    ?postfix: atom
            | postfix "." NAME -> path
            | postfix "[" expr "]" -> filter_
    args: expr ("," expr)*
    ?atom: NUMBER -> number
         | STRING -> string
         | "true" -> true
         | "false" -> false
         | "null" -> null
         | NAME -> var
         | FUNC "(" [args] ")" -> call
         | "(" expr ")"
         | "[" [args] "]" -> list_
         | "[" expr ".." expr "]" -> range_ii
         | "[" expr ".." expr ")" -> range_ie
         | "(" expr ".." expr "]" -> range_ei
         | "(" expr ".." expr ")" -> range_ee
         | "{" [pair ("," pair)*] "}" -> map_
    pair: (STRING | NAME) ":" expr
    COMP_OP: "=" | "!=" | "<=" | ">=" | "<" | ">"
    ADD_OP: "+" | "-"
    MUL_OP: "*" | "/"
    STRING: /"(?:[^"\\]|\\.)*"/
    FUNC.2: /(?!_KW_)[A-Za-z_][A-Za-z0-9_]*(?: (?!_KW_)[A-Za-z_][A-Za-z0-9_]*)*(?=\s*\()/
"""
    + _COMMON
).replace("_KW_", r"(?:if|then|else|and|or|in|between)\b")


@lru_cache(maxsize=2)
def _parser(language: str) -> Lark:
    grammar = _JUEL_GRAMMAR if language == JUEL else _FEEL_GRAMMAR
    return Lark(grammar, parser="lalr", maybe_placeholders=True)


# -- values -------------------------------------------------------------------------------------

Scope = Mapping[str, Any]
Code = Callable[[Scope], Any]
_NUMBER = (int, float)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a map"
    return type(value).__name__


def _number(value: float) -> int | float:
    """Whole results as int (stored variables read 2, not 2.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _unescape(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m[1], m[1]), body)


def _feel_string(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(_number(value))
    return str(value)


def _to_number(value: Any) -> Any:
    if value is None or _is_number(value):
        return value
    if isinstance(value, str):
        try:
            return _number(float(value)) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return None
    return None


def _list_arg(args: tuple[Any, ...], name: str) -> list[Any]:
    if len(args) == 1 and isinstance(args[0], list | tuple):
        return list(args[0])
    return list(args)


def _numbers(args: tuple[Any, ...], name: str) -> list[Any]:
    items = _list_arg(args, name)
    if not all(_is_number(item) for item in items):
        raise ExpressionFailed(f"{name}() takes numbers")
    return items


def _substring(text: Any, start: Any, length: Any = None) -> Any:
    if text is None:
        return None
    if not isinstance(text, str) or not _is_number(start):
        raise ExpressionFailed("substring() takes a string and a start position")
    begin = int(start) - 1 if start > 0 else len(text) + int(start)
    begin = max(begin, 0)
    if length is None:
        return text[begin:]
    return text[begin : begin + int(length)]


def _text_fn(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if any(arg is None for arg in args):
            return None
        if not all(isinstance(arg, str) for arg in args):
            raise ExpressionFailed(f"{name}() takes strings, not {', '.join(map(_kind, args))}")
        return function(*args)

    return call


def _not(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ExpressionFailed(f"not() takes a boolean, not {_kind(value)}")
    return not value


def _mean(*args: Any) -> Any:
    items = _numbers(args, "mean")
    return _number(sum(items) / len(items)) if items else None


def _extreme(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        items = _list_arg(args, name)
        if not items:
            return None
        try:
            return function(items)
        except TypeError:
            raise ExpressionFailed(f"{name}() cannot compare the items") from None

    return call


def _count(items: Any) -> Any:
    if not isinstance(items, list | tuple):
        raise ExpressionFailed(f"count() takes a list, not {_kind(items)}")
    return len(items)


def _list_contains(items: Any, value: Any) -> Any:
    if not isinstance(items, list | tuple):
        raise ExpressionFailed(f"list contains() takes a list, not {_kind(items)}")
    return value in items


def _append(items: Any, *values: Any) -> Any:
    if not isinstance(items, list | tuple):
        raise ExpressionFailed(f"append() takes a list, not {_kind(items)}")
    return [*items, *values]


def _concatenate(*lists: Any) -> Any:
    if not all(isinstance(items, list | tuple) for items in lists):
        raise ExpressionFailed("concatenate() takes lists")
    return [item for items in lists for item in items]


def _distinct(items: Any) -> Any:
    if not isinstance(items, list | tuple):
        raise ExpressionFailed(f"distinct values() takes a list, not {_kind(items)}")
    _charge(len(items))
    unique: list[Any] = []
    seen: set[Any] = set()
    for item in items:
        try:
            if item in seen:
                continue
            seen.add(item)
        except TypeError:  # a list or map: compared by value, as FEEL does
            if item in unique:
                continue
            _charge(len(unique))
        unique.append(item)
    return unique


def _string_join(items: Any, delimiter: Any = "") -> Any:
    if not isinstance(items, list | tuple) or not isinstance(delimiter, str):
        raise ExpressionFailed("string join() takes a list and a delimiter")
    return delimiter.join(str(item) for item in items if item is not None)


def _rounding(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def call(value: Any) -> Any:
        if value is None:
            return None
        if not _is_number(value):
            raise ExpressionFailed(f"takes a number, not {_kind(value)}")
        return function(value)

    return call


# FEEL functions: name -> (function, least, most arguments; None: any number).
FEEL_FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "string length": (_text_fn(len, "string length"), 1, 1),
    "contains": (_text_fn(lambda s, sub: sub in s, "contains"), 2, 2),
    "starts with": (_text_fn(lambda s, p: s.startswith(p), "starts with"), 2, 2),
    "ends with": (_text_fn(lambda s, p: s.endswith(p), "ends with"), 2, 2),
    "upper case": (_text_fn(str.upper, "upper case"), 1, 1),
    "lower case": (_text_fn(str.lower, "lower case"), 1, 1),
    "substring": (_substring, 2, 3),
    "string": (_feel_string, 1, 1),
    "number": (_to_number, 1, 1),
    "count": (_count, 1, 1),
    "sum": (lambda *a: _number(sum(_numbers(a, "sum"))), 1, None),
    "mean": (_mean, 1, None),
    "min": (_extreme(min, "min"), 1, None),
    "max": (_extreme(max, "max"), 1, None),
    "list contains": (_list_contains, 2, 2),
    "append": (_append, 2, None),
    "concatenate": (_concatenate, 1, None),
    "distinct values": (_distinct, 1, 1),
    "string join": (_string_join, 1, 2),
    "not": (_not, 1, 1),
    "abs": (_rounding(abs), 1, 1),
    "floor": (_rounding(math.floor), 1, 1),
    "ceiling": (_rounding(math.ceil), 1, 1),
    "is defined": (lambda value: value is not None, 1, 1),  # compiled specially
}
SUPPORTED_FEEL += ", ".join(f"{name}()" for name in FEEL_FUNCTIONS)


def _method_target(kinds: tuple[type, ...], name: str) -> Callable[[Any], None]:
    def check(target: Any) -> None:
        if not isinstance(target, kinds) or isinstance(target, bool):
            raise ExpressionFailed(f".{name}() is not a method of {_kind(target)}")

    return check


def _size(target: Any) -> int:
    if not isinstance(target, str | list | tuple | Mapping):
        raise ExpressionFailed(f".size() is not a method of {_kind(target)}")
    return len(target)


def _contains(target: Any, value: Any) -> bool:
    if isinstance(target, str):
        if not isinstance(value, str):
            raise ExpressionFailed(".contains() of a string takes a string")
        return value in target
    if isinstance(target, list | tuple):
        return value in target
    raise ExpressionFailed(f".contains() is not a method of {_kind(target)}")


def _java_substring(target: Any, begin: Any, end: Any = None) -> str:
    if not isinstance(target, str):
        raise ExpressionFailed(f".substring() is not a method of {_kind(target)}")
    return target[int(begin) :] if end is None else target[int(begin) : int(end)]


def _string_method(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    def call(target: Any, *args: Any) -> Any:
        if not isinstance(target, str):
            raise ExpressionFailed(f".{name}() is not a method of {_kind(target)}")
        if not all(isinstance(arg, str) for arg in args):
            raise ExpressionFailed(f".{name}() takes strings")
        return function(target, *args)

    return call


def _map_method(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    def call(target: Any, *args: Any) -> Any:
        if isinstance(target, Mapping):
            return function(target, *args)
        if name == "get" and isinstance(target, list | tuple) and args and _is_number(args[0]):
            index = int(args[0])
            return target[index] if 0 <= index < len(target) else None
        raise ExpressionFailed(f".{name}() is not a method of {_kind(target)}")

    return call


# JUEL methods (Java's String, List and Map methods authors call): name -> (function taking
# the target first, least, most arguments).
JUEL_METHODS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "size": (_size, 0, 0),
    "length": (_string_method(len, "length"), 0, 0),
    "isEmpty": (lambda target: _size(target) == 0, 0, 0),
    "contains": (_contains, 1, 1),
    "startsWith": (_string_method(str.startswith, "startsWith"), 1, 1),
    "endsWith": (_string_method(str.endswith, "endsWith"), 1, 1),
    "toUpperCase": (_string_method(str.upper, "toUpperCase"), 0, 0),
    "toLowerCase": (_string_method(str.lower, "toLowerCase"), 0, 0),
    "trim": (_string_method(str.strip, "trim"), 0, 0),
    "substring": (_java_substring, 1, 2),
    "equals": (lambda target, other: target == other, 1, 1),
    "containsKey": (_map_method(lambda m, k: k in m, "containsKey"), 1, 1),
    "get": (_map_method(lambda m, k: m.get(k), "get"), 1, 1),
}


# -- the interpreter ----------------------------------------------------------------------------

_MISSING = object()


def _truth(value: Any, language: str, what: str) -> bool | None:
    if value is None:
        return None if language == FEEL else False
    if isinstance(value, bool):
        return value
    if language == JUEL and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ExpressionFailed(f"{what} needs a boolean, not {_kind(value)} ({value!r})")


def _member(target: Any, key: Any, language: str) -> Any:
    if isinstance(target, Mapping):
        return target.get(key)
    if target is None:
        if language == JUEL:
            raise ExpressionFailed(f"cannot read {key!r} of null")
        return None
    if language == FEEL and isinstance(target, list | tuple):  # FEEL projects over a list
        return [_member(item, key, language) for item in target]
    raise ExpressionFailed(f"cannot read {key!r} of {_kind(target)}: only maps have entries")


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _compare(op: str, a: Any, b: Any, language: str) -> Any:
    if op in ("=", "==", "eq"):
        return _equal(a, b)
    if op in ("!=", "ne"):
        return not _equal(a, b)
    if a is None or b is None:
        if language == FEEL:
            return None
        raise ExpressionFailed(f"cannot compare {_kind(a)} with {_kind(b)}")
    comparable = (_is_number(a) and _is_number(b)) or type(a) is type(b)
    if not comparable or isinstance(a, bool | list | tuple | Mapping):
        raise ExpressionFailed(f"cannot compare {_kind(a)} with {_kind(b)} using {op}")
    try:
        if op in ("<", "lt"):
            return a < b
        if op in (">", "gt"):
            return a > b
        if op in ("<=", "le"):
            return a <= b
        return a >= b
    except TypeError:
        raise ExpressionFailed(f"cannot compare {_kind(a)} with {_kind(b)}") from None


def _arith(op: str, a: Any, b: Any, language: str) -> Any:
    if language == JUEL:  # JUEL reads null as 0 in arithmetic
        a, b = (0 if a is None else a), (0 if b is None else b)
    elif a is None or b is None:
        return None
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if op == "+" and language == JUEL and (isinstance(a, str) or isinstance(b, str)):
        return _juel_text(a) + _juel_text(b)  # EL 3.0's string concatenation
    if not (_is_number(a) and _is_number(b)):
        raise ExpressionFailed(f"cannot compute {_kind(a)} {op} {_kind(b)}")
    if op in ("+", "-", "*"):
        return _number(a + b if op == "+" else a - b if op == "-" else a * b)
    if b == 0:
        if language == FEEL:
            return None
        raise ExpressionFailed("division by zero")
    if op in ("/", "div"):
        if isinstance(a, int) and isinstance(b, int) and a % b == 0:
            return a // b
        return _number(a / b)
    return a % b  # % and mod


def _juel_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(_number(value) if isinstance(value, float) else value)


def _power(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if not (_is_number(a) and _is_number(b)):
        raise ExpressionFailed(f"cannot compute {_kind(a)} ** {_kind(b)}")
    if abs(b) > _MAX_EXPONENT or (abs(a) > 1 and abs(b) * math.log10(abs(a)) > _MAX_EXPONENT):
        raise ExpressionFailed(f"a power above 10**{_MAX_EXPONENT} is not computed")
    try:
        return _number(a**b)
    except (OverflowError, ZeroDivisionError) as exc:
        raise ExpressionFailed(str(exc)) from None


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) == 0
    return False


class _Range:
    __slots__ = ("high", "high_closed", "low", "low_closed")

    def __init__(self, low: Any, high: Any, low_closed: bool, high_closed: bool) -> None:
        self.low, self.high = low, high
        self.low_closed, self.high_closed = low_closed, high_closed

    def __contains__(self, value: Any) -> bool:
        above = _compare(">=" if self.low_closed else ">", value, self.low, FEEL)
        below = _compare("<=" if self.high_closed else "<", value, self.high, FEEL)
        return bool(above) and bool(below)


class _Compiler:
    """Turns a parse tree into nested closures over the variables."""

    def __init__(self, language: str, text: str) -> None:
        self.language = language
        self.text = text
        # Whether the expression reads any variable (else its value is the diagram's own).
        self.reads_variables = False

    def refuse(self, message: str) -> ExpressionNotSupported:
        supported = SUPPORTED_JUEL if self.language == JUEL else SUPPORTED_FEEL
        return ExpressionNotSupported(f"{message}. {supported}.")

    def compile(self, node: Tree | Token, depth: int = 0) -> Code:
        if depth > _MAX_DEPTH:
            raise self.refuse("The expression is nested too deeply")
        if isinstance(node, Token):  # pragma: no cover - atoms are trees
            raise self.refuse(f"Unexpected {node!s}")
        rule = str(node.data)
        handler = getattr(self, f"_{rule.rstrip('_')}", None)
        if handler is None:  # pragma: no cover - every rule has a handler
            raise self.refuse(f"{rule} is not supported")
        code: Code = handler(node, depth + 1)
        return code

    def _children(self, node: Tree, depth: int) -> list[Code]:
        return [self.compile(child, depth) for child in node.children if isinstance(child, Tree)]

    # literals and names
    def _number(self, node: Tree, depth: int) -> Code:
        text = str(node.children[0])
        value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        return lambda scope: value

    def _string(self, node: Tree, depth: int) -> Code:
        value = _unescape(str(node.children[0]))
        return lambda scope: value

    def _true(self, node: Tree, depth: int) -> Code:
        return lambda scope: True

    def _false(self, node: Tree, depth: int) -> Code:
        return lambda scope: False

    def _null(self, node: Tree, depth: int) -> Code:
        return lambda scope: None

    def _var(self, node: Tree, depth: int) -> Code:
        self.reads_variables = True
        name = str(node.children[0])
        if name.startswith("_"):
            raise self.refuse(f"Variable names starting with _ ({name}) cannot be read")
        language = self.language

        def read(scope: Scope) -> Any:
            value = scope.get(name, _MISSING)
            if value is _MISSING:
                if language == JUEL:
                    raise ExpressionFailed(f"there is no variable {name!r}")
                return None
            return value

        return read

    def _path(self, node: Tree, depth: int) -> Code:
        target = self.compile(node.children[0], depth)
        key = str(node.children[1])
        if key.startswith("_"):
            raise self.refuse(f"Names starting with _ ({key}) cannot be read")
        language = self.language
        return lambda scope: _member(target(scope), key, language)

    def _index(self, node: Tree, depth: int) -> Code:  # JUEL a[b]: 0-based, or a map's key
        target, key = self._children(node, depth)

        def index(scope: Scope) -> Any:
            value, at = target(scope), key(scope)
            if isinstance(value, list | tuple):
                if not _is_number(at):
                    raise ExpressionFailed(f"a list's index must be a number, not {_kind(at)}")
                position = int(at)
                return value[position] if 0 <= position < len(value) else None
            if isinstance(at, str) and at.startswith("_"):
                raise ExpressionFailed("names starting with _ cannot be read")
            return _member(value, at, JUEL)

        return index

    def _filter(self, node: Tree, depth: int) -> Code:  # FEEL a[1] (1-based), a[item > 2]
        target, condition = self._children(node, depth)

        def filtered(scope: Scope) -> Any:
            value = target(scope)
            if value is None:
                return None
            at = condition(scope)
            if _is_number(at):
                if not isinstance(value, list | tuple):
                    raise ExpressionFailed(f"cannot index {_kind(value)}")
                position = int(at)
                position = position - 1 if position > 0 else len(value) + position
                return value[position] if 0 <= position < len(value) else None
            items = value if isinstance(value, list | tuple) else [value]
            _charge(len(items))
            kept = []
            for item in items:
                overlay: dict[str, Any] = dict(item) if isinstance(item, Mapping) else {}
                overlay["item"] = item
                # ChainMap writes only to its first map: the scope is read, never copied.
                if condition(ChainMap(overlay, cast("MutableMapping[str, Any]", scope))) is True:
                    kept.append(item)
            return kept

        return filtered

    def _args(self, node: Tree | None, depth: int) -> list[Code]:
        if node is None:
            return []
        return self._children(node, depth)

    def _call(self, node: Tree, depth: int) -> Code:
        name = " ".join(str(node.children[0]).split())
        if self.language == JUEL:
            raise self.refuse(f"The function {name}() is not supported")
        if name not in FEEL_FUNCTIONS:
            raise self.refuse(f"The function {name}() is not supported")
        function, least, most = FEEL_FUNCTIONS[name]
        arg_nodes = node.children[1]
        args = self._args(arg_nodes, depth)
        if len(args) < least or (most is not None and len(args) > most):
            raise self.refuse(
                f"{name}() takes {least}{'' if most == least else ' or more'} arguments"
            )
        if name == "is defined":
            return self._is_defined(arg_nodes.children[0], depth)

        def call(scope: Scope) -> Any:
            return function(*(arg(scope) for arg in args))

        return call

    def _is_defined(self, node: Tree, depth: int) -> Code:
        steps: list[str] = []
        current: Any = node
        while isinstance(current, Tree) and current.data == "path":
            steps.insert(0, str(current.children[1]))
            current = current.children[0]
        if not (isinstance(current, Tree) and current.data == "var"):
            value = self.compile(node, depth)
            return lambda scope: value(scope) is not None
        root = str(current.children[0])
        self.reads_variables = True

        def defined(scope: Scope) -> bool:
            value = scope.get(root, _MISSING)
            for step in steps:
                if not isinstance(value, Mapping):
                    return False
                value = value.get(step, _MISSING)
            return value is not _MISSING

        return defined

    def _method(self, node: Tree, depth: int) -> Code:
        target = self.compile(node.children[0], depth)
        name = str(node.children[1])
        if name not in JUEL_METHODS:
            raise self.refuse(f"The method {name}() is not supported")
        function, least, most = JUEL_METHODS[name]
        args = self._args(node.children[2], depth)
        if len(args) < least or (most is not None and len(args) > most):
            raise self.refuse(f".{name}() does not take {len(args)} arguments")
        return lambda scope: function(target(scope), *(arg(scope) for arg in args))

    def _list(self, node: Tree, depth: int) -> Code:
        items = self._args(node.children[0], depth)
        return lambda scope: [item(scope) for item in items]

    def _map(self, node: Tree, depth: int) -> Code:
        entries: list[tuple[Any, Code]] = []
        for pair in node.children:
            if not isinstance(pair, Tree):
                continue
            key_token, value_node = pair.children
            key = str(key_token)
            if key_token.type == "STRING":  # type: ignore[union-attr]
                key = _unescape(key)
            entries.append((key, self.compile(value_node, depth)))
        return lambda scope: {key: value(scope) for key, value in entries}

    def _range_ii(self, node: Tree, depth: int) -> Code:
        return self._range(node, depth, True, True)

    def _range_ie(self, node: Tree, depth: int) -> Code:
        return self._range(node, depth, True, False)

    def _range_ei(self, node: Tree, depth: int) -> Code:
        return self._range(node, depth, False, True)

    def _range_ee(self, node: Tree, depth: int) -> Code:
        return self._range(node, depth, False, False)

    def _range(self, node: Tree, depth: int, low_closed: bool, high_closed: bool) -> Code:
        low, high = self._children(node, depth)
        return lambda scope: _Range(low(scope), high(scope), low_closed, high_closed)

    # operators
    def _if(self, node: Tree, depth: int) -> Code:
        condition, then, otherwise = self._children(node, depth)
        language = self.language

        def choose(scope: Scope) -> Any:
            return then(scope) if _truth(condition(scope), language, "if") else otherwise(scope)

        return choose

    def _junction(self, node: Tree, depth: int, decisive: bool, word: str) -> Code:
        """`or` (decided by a true operand) and `and` (by a false one), in three-valued logic:
        undecided with a null operand, the other truth value otherwise."""
        left, right = self._children(node, depth)
        language = self.language

        def junction(scope: Scope) -> Any:
            a = _truth(left(scope), language, word)
            if a is decisive:
                return decisive
            b = _truth(right(scope), language, word)
            if b is decisive:
                return decisive
            return None if a is None or b is None else not decisive

        return junction

    def _or(self, node: Tree, depth: int) -> Code:
        return self._junction(node, depth, True, "or")

    def _and(self, node: Tree, depth: int) -> Code:
        return self._junction(node, depth, False, "and")

    def _not(self, node: Tree, depth: int) -> Code:
        (operand,) = self._children(node, depth)
        return lambda scope: not _truth(operand(scope), JUEL, "!")

    def _empty(self, node: Tree, depth: int) -> Code:
        (operand,) = self._children(node, depth)
        return lambda scope: _empty(operand(scope))

    def _neg(self, node: Tree, depth: int) -> Code:
        (operand,) = self._children(node, depth)
        language = self.language

        def negate(scope: Scope) -> Any:
            value = operand(scope)
            if value is None and language == FEEL:
                return None
            if not _is_number(value):
                raise ExpressionFailed(f"cannot negate {_kind(value)}")
            return -value

        return negate

    def _compare(self, node: Tree, depth: int) -> Code:
        left, op_token, right = node.children
        a, b = self.compile(left, depth), self.compile(right, depth)
        op = str(op_token)
        language = self.language
        return lambda scope: _compare(op, a(scope), b(scope), language)

    def _arith(self, node: Tree, depth: int) -> Code:
        left, op_token, right = node.children
        a, b = self.compile(left, depth), self.compile(right, depth)
        op = str(op_token)
        language = self.language
        return lambda scope: _arith(op, a(scope), b(scope), language)

    def _power(self, node: Tree, depth: int) -> Code:
        a, b = self._children(node, depth)
        return lambda scope: _power(a(scope), b(scope))

    def _between(self, node: Tree, depth: int) -> Code:
        value, low, high = self._children(node, depth)

        def between(scope: Scope) -> Any:
            v = value(scope)
            return v in _Range(low(scope), high(scope), True, True)

        return between

    def _in(self, node: Tree, depth: int) -> Code:
        value, container = self._children(node, depth)

        def contained(scope: Scope) -> Any:
            v, c = value(scope), container(scope)
            if isinstance(c, _Range):
                return v in c
            if isinstance(c, list | tuple):
                return any(_equal(v, item) for item in c)
            return _equal(v, c)

        return contained


class Expression:
    """A compiled Camunda expression."""

    def __init__(self, text: str, language: str, code: Code, *, reads_variables: bool) -> None:
        self.text = text
        self.language = language
        self._code = code
        # False: the value comes from the diagram's text alone (e.g. `${{'a': 'b'}}`).
        self.reads_variables = reads_variables

    def evaluate(self, variables: Scope) -> Any:
        budget = _work_left.set([MAX_WORK])
        try:
            value = self._code(variables)
        except ExpressionFailed:
            raise
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            raise ExpressionFailed(f"{self.text}: {exc}") from None
        finally:
            _work_left.reset(budget)
        if isinstance(value, _Range):
            raise ExpressionFailed(f"{self.text}: a range is only a value to test with `in`")
        return value


def _inside(text: str, language: str) -> str:
    stripped = text.strip()
    return stripped[2:-1] if language == JUEL else stripped[len(FEEL_PREFIX) :]


def _syntax_message(exc: UnexpectedInput, source: str) -> str:
    if isinstance(exc, UnexpectedEOF):
        return "it ends too early"
    if isinstance(exc, UnexpectedCharacters):
        return f"unexpected {source[exc.pos_in_stream or 0]!r} at column {exc.column}"
    token = getattr(exc, "token", None)
    if token is not None and getattr(token, "type", "") == "$END":
        return "it ends too early"
    return f"unexpected {str(token)!r} at column {exc.column}"


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> Expression | None:
    """The compiled expression of a `${...}` or `= ...` text, None for any other text;
    raise `ExpressionNotSupported` for one that cannot be read."""
    language = language_of(text)
    if language is None:
        return None
    supported = SUPPORTED_JUEL if language == JUEL else SUPPORTED_FEEL
    source = _inside(text, language)
    if not source.strip():
        raise ExpressionNotSupported(f"The expression is empty. {supported}.")
    if len(source) > MAX_LENGTH:
        raise ExpressionNotSupported(f"The expression is longer than {MAX_LENGTH} characters.")
    try:
        tree = _parser(language).parse(source)
    except UnexpectedInput as exc:
        raise ExpressionNotSupported(
            f"{text.strip()!r} is not valid {language} ({_syntax_message(exc, source)}). "
            f"{supported}."
        ) from None
    except (LarkError, RecursionError) as exc:
        raise ExpressionNotSupported(
            f"{text.strip()!r} is not valid {language} ({exc}). {supported}."
        ) from None
    compiler = _Compiler(language, text)
    code = compiler.compile(tree)
    return Expression(text.strip(), language, code, reads_variables=compiler.reads_variables)


def check(text: str) -> None:
    """Raise `ExpressionNotSupported` if `text` is a Camunda expression that cannot be read."""
    compile_expression(text)


def evaluate(text: str, variables: Scope) -> Any:
    """The value of a Camunda expression over `variables`."""
    expression = compile_expression(text)
    if expression is None:
        raise ExpressionNotSupported(f"{text!r} is not a ${{...}} or = expression.")
    return expression.evaluate(variables)
