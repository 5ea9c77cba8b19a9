"""Rules about the code itself, checked by reading the source."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("api", "config", "engine", "processes", "tasks_ui")


def _sources() -> list[Path]:
    return [path for app in APPS for path in sorted((ROOT / app).rglob("*.py"))
            if "migrations" not in path.parts]


def _row_locks_without_no_key(path: Path) -> list[int]:
    """Lines with a `select_for_update(...)` call that does not say `no_key`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr == "select_for_update"
        and not any(keyword.arg == "no_key" for keyword in node.keywords)
    ]


def test_every_row_lock_states_whether_it_needs_a_key_lock():
    # FOR UPDATE also blocks inserts of rows that reference the locked one (their foreign
    # key check takes FOR KEY SHARE); most operations only need FOR NO KEY UPDATE.
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path in _sources()
                 for line in _row_locks_without_no_key(path)]
    assert offenders == []


def test_the_rule_finds_a_row_lock_without_no_key(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("Job.objects.select_for_update().get(pk=1)\n"
                      "Job.objects.select_for_update(no_key=True).get(pk=1)\n")
    assert _row_locks_without_no_key(sample) == [1]
