"""Compiling diagram scripts: RestrictedPython's rules plus Baton's.

RestrictedPython refuses names and attributes starting with "_", `exec`/`eval` and the
inspection attributes of frames, code and generators, and sends attribute and item access,
writes, iteration and unpacking through guard functions (`guards`). Baton's policy adds:
size-guarded `+ * ** << %`, their augmented forms and f-strings; every called object passes
`_baton_call_` (so that `int(...)`, `bytes(...)` are size-checked while `int` stays the real
type for isinstance); a check point in every `while` loop; no class definitions.
"""

import ast
import functools
import re
import types
from collections.abc import Iterable
from typing import Any

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.transformer import (
    IOPERATOR_TO_STR,
    RestrictingNodeTransformer,
    copy_locations,
)

SCRIPT_FILENAME = "<diagram script>"

_BINOP_GUARDS = {
    ast.Add: "_baton_add_",
    ast.Mult: "_baton_mul_",
    ast.Pow: "_baton_pow_",
    ast.LShift: "_baton_lshift_",
    ast.Mod: "_baton_mod_",
}
_AUGMENTED_GUARDS = {ast.Add: "_baton_iadd_", ast.Mult: "_baton_imul_", ast.Sub: "_baton_isub_"}


def _name(identifier: str) -> ast.Name:
    return ast.Name(identifier, ast.Load())


def _call(function: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
    node = ast.Call(func=_name(function), args=args, keywords=[])
    copy_locations(node, like)  # type: ignore[arg-type]
    return node


class BatonPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus Baton's rules (see the module's docstring)."""

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = self.node_contents_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        if guard is None:
            return node
        return _call(guard, [node.left, node.right], node)

    def visit_Call(self, node: ast.Call) -> Any:
        visited = super().visit_Call(node)
        if not isinstance(visited, ast.Call):
            return visited
        node = visited
        if isinstance(node.func, ast.Name) and node.func.id == "_apply_":
            node.args[0] = _call("_baton_call_", [node.args[0]], node)
        else:
            node.func = _call("_baton_call_", [node.func], node)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        target = node.target
        if isinstance(target, ast.Subscript) and not any(
            isinstance(n, ast.Slice) for n in ast.walk(target.slice)
        ):
            return self._augmented_item(node, target)
        guard = _AUGMENTED_GUARDS.get(type(node.op))
        if isinstance(target, ast.Name) and guard is not None:
            # n += 1  ->  n = _baton_iadd_(n, 1): the common case without a dispatch on "+="
            self.check_name(target, target.id)
            value = self.visit(node.value)
            assign = ast.Assign(
                targets=[ast.Name(target.id, ast.Store())],
                value=_call(guard, [_name(target.id), value], node),
            )
            copy_locations(assign, node)
            return assign
        return super().visit_AugAssign(node)

    def _augmented_item(self, node: ast.AugAssign, target: ast.Subscript) -> list[ast.stmt]:
        # d[k] += v  ->  _t0 = d; _t1 = k; _write_(_t0)[_t1] = _inplacevar_('+=', d[k], v)
        container = self.visit(target.value)
        key = self.visit(target.slice)
        value = self.visit(node.value)
        holder, index = self.gen_tmp_name(), self.gen_tmp_name()
        current = _call("_getitem_", [_name(holder), _name(index)], node)
        combined = _call(
            "_inplacevar_", [ast.Constant(IOPERATOR_TO_STR[type(node.op)]), current, value], node
        )
        store = ast.Subscript(
            value=_call("_write_", [_name(holder)], node), slice=_name(index), ctx=ast.Store()
        )
        statements: list[ast.stmt] = [
            ast.Assign(targets=[ast.Name(holder, ast.Store())], value=container),
            ast.Assign(targets=[ast.Name(index, ast.Store())], value=key),
            ast.Assign(targets=[store], value=combined),
        ]
        for statement in statements:
            copy_locations(statement, node)
        return statements

    def visit_While(self, node: ast.While) -> Any:
        node = self.node_contents_visit(node)
        # `while True: pass` compiles to a jump onto itself, which the trace function never
        # sees; a name lookup at the top of the body gives every iteration a line event.
        tick = ast.Expr(_name("_baton_loop_"))
        copy_locations(tick, node.body[0])
        node.body.insert(0, tick)
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> Any:
        parts: list[ast.expr] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                spec = (
                    self.visit(value.format_spec)
                    if value.format_spec is not None
                    else ast.Constant("")
                )
                parts.append(
                    _call(
                        "_baton_format_",
                        [self.visit(value.value), ast.Constant(value.conversion), spec],
                        value,
                    )
                )
            else:
                parts.append(self.visit(value))
        return _call("_baton_fstring_", parts, node)

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self.error(node, "Class definitions are not allowed in diagram scripts.")
        return node


# (error type, message, line) when a script cannot run.
CompileFailure = tuple[str, str, int | None]


@functools.lru_cache(maxsize=2048)
def compile_script(source: str, mode: str) -> types.CodeType | CompileFailure:
    """The restricted code for `source` ("exec" or "eval"), or why it cannot run."""
    if mode == "eval":
        source = source.lstrip(" \t")  # as the builtin eval() does
    try:
        tree: ast.Module | ast.Expression = ast.parse(  # type: ignore[assignment]
            source, SCRIPT_FILENAME, mode
        )
    except SyntaxError as exc:
        return ("SyntaxError", exc.msg, exc.lineno)
    except (ValueError, RecursionError, MemoryError) as exc:
        return ("ScriptNotAllowed", f"The script cannot be compiled: {exc}", None)
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    try:
        result = compiler(tree, filename=SCRIPT_FILENAME, policy=BatonPolicy)
    except SyntaxError as exc:  # found by Python's compiler after parsing
        return ("SyntaxError", exc.msg, exc.lineno)
    except RecursionError:
        return ("ScriptNotAllowed", "The script is nested too deeply to be compiled.", None)
    except (ValueError, TypeError, MemoryError) as exc:
        return ("ScriptNotAllowed", f"The script cannot be compiled: {exc}", None)
    if result.errors or result.code is None:
        rules = "; ".join(result.errors) or "it cannot be compiled"
        return (
            "ScriptNotAllowed",
            f"The script breaks the rules for diagram scripts: {rules}",
            _first_line(result.errors),
        )
    return result.code


def failure_answer(failure: CompileFailure) -> dict[str, Any]:
    """The sandbox's answer for a script that cannot be compiled."""
    kind, message, line = failure
    if kind == "SyntaxError":
        message = f"invalid Python: {message}"
    return {"ok": False, "type": kind, "message": message, "args": [message], "line": line}


def syntax_problem(source: str, mode: str) -> tuple[str, int | None] | None:
    """(message, line) when `source` is not valid Python, else None. Rule violations are not
    reported here: they fail the task when it runs (and open an incident)."""
    compiled = compile_script(source, mode)
    if isinstance(compiled, tuple) and compiled[0] == "SyntaxError":
        return compiled[1], compiled[2]
    if isinstance(compiled, tuple):
        # The restricted compiler stopped at a rule; Python's own compiler still has to
        # agree that the rest is valid (e.g. no `return` outside a function).
        try:
            compile(source, SCRIPT_FILENAME, mode, dont_inherit=True)
        except SyntaxError as exc:
            return exc.msg, exc.lineno
        except (ValueError, RecursionError, MemoryError):
            return None
    return None


def _first_line(errors: Iterable[str]) -> int | None:
    for error in errors:
        match = re.match(r"Line (\d+):", error)
        if match:
            return int(match.group(1))
    return None
