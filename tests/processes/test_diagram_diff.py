"""The difference between two versions of a diagram, element by element."""

from processes.diagram_diff import diff_diagrams, humanize
from tests.helpers import EXPENSE_FILE, build_bpmn

EXPENSE = EXPENSE_FILE.read_text()


def test_identical_diagrams_have_no_difference():
    diff = diff_diagrams(EXPENSE, EXPENSE)
    assert diff.is_empty


def test_added_removed_and_changed_elements():
    old = build_bpmn("tiny")
    new = build_bpmn("tiny", script="x = 1", candidate_groups="legal")

    diff = diff_diagrams(old, new)

    assert [(c.element_id, c.kind, c.name) for c in diff.added] == [
        ("prepare", "Script task", "Prepare"),
        ("flow_2", "Sequence flow", ""),
    ]
    assert [c.element_id for c in diff.removed] == []
    changed = {c.element_id: c.details for c in diff.changed}
    assert changed["review"] == ("camunda:candidateGroups: “managers” → “legal”",)
    # The flows after the start now lead elsewhere.
    assert changed["flow_0"] == ("targetRef: “review” → “prepare”",)
    assert changed["flow_1"] == ("sourceRef: “review” → “prepare”", "targetRef: “end” → “review”")
    assert not diff.layout_changed

    backwards = diff_diagrams(new, old)
    assert [c.element_id for c in backwards.removed] == ["prepare", "flow_2"]
    assert backwards.added == []


def test_scripts_forms_and_conditions_are_reported_by_part():
    old = build_bpmn("tiny", script="x = 1", condition="x > 1")
    new = build_bpmn("tiny", script="x = 2", condition="x > 2").replace(
        'label="Note"', 'label="Your note"'
    )

    changed = {c.element_id: c.details for c in diff_diagrams(old, new).changed}

    assert changed == {
        "prepare": ("script changed",),
        "review": ("extensionElements changed",),
        "flow_condition": ("conditionExpression changed",),
    }


def test_a_moved_shape_is_a_layout_change_only():
    moved = EXPENSE.replace('<dc:Bounds x="152" y="202"', '<dc:Bounds x="160" y="202"', 1)
    assert moved != EXPENSE

    diff = diff_diagrams(EXPENSE, moved)

    assert (diff.added, diff.removed, diff.changed) == ([], [], [])
    assert diff.layout_changed
    assert not diff.is_empty


def test_long_values_are_shortened_and_a_changed_process_is_reported():
    old = build_bpmn("tiny", name="Short")
    new = build_bpmn("tiny", name="A very long process name " * 5)

    (change,) = diff_diagrams(old, new).changed

    assert change.element_id == "tiny"
    assert change.kind == "Process"
    (detail,) = change.details
    assert detail.startswith("name: “Short” → “A very long process name A very long")
    assert detail.endswith("…”")
    assert len(detail) < 100


def test_humanize():
    assert humanize("userTask") == "User task"
    assert humanize("exclusiveGateway") == "Exclusive gateway"
    assert humanize("process") == "Process"


def test_another_indentation_and_drawing_order_are_no_difference():
    from lxml import etree

    root = etree.fromstring(EXPENSE.encode())
    for node in root.iter():
        node.tail = None if node.tail is not None and not node.tail.strip() else node.tail
    plane = root.find(".//{http://www.omg.org/spec/BPMN/20100524/DI}BPMNPlane")
    plane[:] = list(reversed(plane))
    rewritten = etree.tostring(root, encoding="unicode")
    assert rewritten != EXPENSE

    assert diff_diagrams(EXPENSE, rewritten).is_empty
