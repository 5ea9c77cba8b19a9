"""A due date the deploy accepts is one the task can have (one rule: engine.bpmn.literals)."""

import datetime

import pytest

from engine.bpmn.literals import due_moment
from engine.services import start_instance
from tests.helpers import build_bpmn, deploy_document

NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("P3D", NOW + datetime.timedelta(days=3)),
        (" p3d ", NOW + datetime.timedelta(days=3)),
        ("2030-01-31T17:00:00Z", datetime.datetime(2030, 1, 31, 17, 0, tzinfo=datetime.UTC)),
    ],
)
def test_due_dates_read_one_way(text: str, due: datetime.datetime) -> None:
    assert due_moment(text, NOW) == due


@pytest.mark.parametrize("text", ["next friday", "2030-13-01T00:00:00"])
def test_other_due_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        due_moment(text, NOW)


def test_a_lower_case_duration_the_deploy_accepts_gives_the_task_its_due_date(db) -> None:
    deploy_document(
        build_bpmn(
            "due_lower", assignment='camunda:candidateGroups="managers" camunda:dueDate="p3d"'
        )
    )
    instance = start_instance(key="due_lower")
    assert instance.status == "waiting"
    task = instance.human_tasks.get()
    assert task.due_at is not None
    assert task.due_at - task.created_at > datetime.timedelta(days=2, hours=23)
