"""Rules about the code itself, checked by reading the source."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("api", "config", "engine", "processes", "tasks_ui")


def _sources() -> list[Path]:
    return [
        path
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def _row_locks_without_no_key(path: Path) -> list[int]:
    """Lines with a `select_for_update(...)` call that does not say `no_key`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "select_for_update"
        and not any(keyword.arg == "no_key" for keyword in node.keywords)
    ]


def test_every_row_lock_states_whether_it_needs_a_key_lock():
    # FOR UPDATE also blocks inserts of rows that reference the locked one (their foreign
    # key check takes FOR KEY SHARE); most operations only need FOR NO KEY UPDATE.
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _sources()
        for line in _row_locks_without_no_key(path)
    ]
    assert offenders == []


def test_the_rule_finds_a_row_lock_without_no_key(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "Job.objects.select_for_update().get(pk=1)\n"
        "Job.objects.select_for_update(no_key=True).get(pk=1)\n"
    )
    assert _row_locks_without_no_key(sample) == [1]


# -- app dependencies ---------------------------------------------------------------------------

# `engine` builds on `processes` (instances belong to definitions); `processes` may use the
# engine's parts below its models (the BPMN layer, connectors, errors), never its state.
ENGINE_STATE = (
    "engine.models",
    "engine.services",
    "engine.selectors",
    "engine.admin",
    "engine.tasks",
    "engine.permissions",
)
# Edges may use both apps.
PROCESSES_EDGES = (
    "processes.views",
    "processes.modeler_views",
    "processes.urls",
    "processes.management",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it, with relative imports resolved."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _local_modules() -> dict[str, Path]:
    return {_module_name(path): path for path in _sources()}


def _reachable(start: str, modules: dict[str, Path]) -> dict[str, str]:
    """Local modules `start` imports, directly or through others: {module: imported by}."""
    seen: dict[str, str] = {}
    todo = [start]
    while todo:
        current = todo.pop()
        for name in _imports(modules[current]):
            if name in modules and name not in seen and name != start:
                seen[name] = current
                todo.append(name)
    return seen


def test_processes_does_not_import_the_engine_state():
    modules = _local_modules()
    core = [
        name
        for name in modules
        if name.startswith("processes") and not name.startswith(PROCESSES_EDGES)
    ]
    offenders = sorted(
        f"{name} -> ... {via} -> {reached}"
        for name in core
        for reached, via in _reachable(name, modules).items()
        if reached.startswith(ENGINE_STATE)
    )
    assert offenders == []


def test_process_pages_do_not_import_the_inbox():
    modules = _local_modules()
    offenders = [
        name
        for name in modules
        if name.startswith("processes")
        and any(imported.startswith("tasks_ui") for imported in _imports(modules[name]))
    ]
    assert offenders == []
