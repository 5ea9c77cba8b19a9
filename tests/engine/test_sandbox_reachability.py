"""The allow-list of the script sandbox, walked: from every value a script can name, through
every attribute the guards hand out, a few levels deep, nothing dangerous is reachable.

This is the review of `engine/bpmn/sandbox/allowed.py` and `safe_builtins.py` as a test: a
value added there that leads to a module, `sys`, `os`, the real builtins or `open`, `exec`,
`eval`, `compile` or `__import__` fails it.
"""

import builtins
import importlib
import os
import socket
import subprocess
import sys
import types
from collections import deque
from typing import Any

from engine.bpmn.sandbox.access import guarded_getattr, guarded_getitem
from engine.bpmn.sandbox.allowed import MODULES, Namespace
from engine.bpmn.sandbox.errors import ScriptError
from engine.bpmn.sandbox.safe_builtins import offered_values

DEPTH = 4
FORBIDDEN_OBJECTS = {
    id(sys): "sys",
    id(os): "os",
    id(builtins): "builtins",
    id(importlib): "importlib",
    id(subprocess): "subprocess",
    id(socket): "socket",
    id(builtins.open): "open",
    id(builtins.exec): "exec",
    id(builtins.eval): "eval",
    id(builtins.compile): "compile",
    id(builtins.__import__): "__import__",
    id(builtins.__dict__): "the builtins' dict",
    id(sys.modules): "sys.modules",
    id(builtins.type): "type",
    id(builtins.object): "object",
    id(builtins.globals): "globals",
    id(builtins.vars): "vars",
    id(builtins.setattr): "setattr",
}
FORBIDDEN_TYPES = (
    types.ModuleType,
    types.FrameType,
    types.CodeType,
    types.TracebackType,
    types.CellType,
)


def _attributes(value: Any) -> list[str]:
    try:
        names = dir(value)
    except Exception:
        return []
    return [name for name in names if not name.startswith("_")]


def _children(value: Any) -> list[tuple[str, Any]]:
    children = []
    for name in _attributes(value):
        try:
            children.append((f".{name}", guarded_getattr(value, name)))
        except (ScriptError, AttributeError, TypeError, ValueError):
            continue
        except Exception:  # noqa: S112 - a descriptor that fails on its class is no path
            continue
    if isinstance(value, dict | list | tuple):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, _ in list(items)[:50]:
            try:
                children.append((f"[{key!r}]", guarded_getitem(value, key)))
            except Exception:  # noqa: S112
                continue
    return children


def walk(roots: dict[str, Any]) -> tuple[int, list[str]]:
    """Breadth-first over everything reachable; (objects seen, forbidden paths found)."""
    queue = deque((name, value, 0) for name, value in roots.items())
    seen: set[int] = set()
    found = []
    while queue:
        path, value, depth = queue.popleft()
        if id(value) in FORBIDDEN_OBJECTS:
            found.append(f"{path} -> {FORBIDDEN_OBJECTS[id(value)]}")
            continue
        if isinstance(value, FORBIDDEN_TYPES):
            found.append(f"{path} -> a {type(value).__name__}")
            continue
        if id(value) in seen or depth >= DEPTH:
            continue
        seen.add(id(value))
        for name, child in _children(value):
            queue.append((path + name, child, depth + 1))
    return len(seen), found


def test_nothing_dangerous_is_reachable_from_what_scripts_are_offered():
    seen, found = walk(offered_values())
    assert seen > 1000, "the walk should cover the builtins, the helpers and the modules"
    assert found == [], "\n".join(found)


def test_the_walk_finds_what_it_looks_for():
    # The check of the test itself: a dangerous value behind an attribute and an item.
    leaky = {"helpers": Namespace("helpers", {"table": {"opener": builtins.open}})}
    assert walk(leaky)[1] == ["helpers.table['opener'] -> open"]


def test_every_offered_module_is_an_immutable_namespace():
    for name, module in MODULES.items():
        assert isinstance(module, Namespace), name
        assert not isinstance(module, types.ModuleType), name
        try:
            module.anything = 1
        except ScriptError:
            pass
        else:
            raise AssertionError(f"{name} could be changed")
        assert not hasattr(module, "__name__"), name  # the from-import fallback needs it
        assert not hasattr(module, "__dict__"), name
