"""Who gets a user task: Camunda assignee, candidate users and groups, expressions, due dates."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from engine.selectors import tasks_for_user
from engine.services import complete_human_task, start_instance
from processes.services import deploy
from processes.validation import UploadedFile
from tests.helpers import build_bpmn


def deploy_tiny(**kwargs: str) -> None:
    xml = build_bpmn("assigned", **kwargs)  # type: ignore[arg-type]
    deploy(name="tiny", files=[UploadedFile("assigned.bpmn", xml.encode())], actor=None)


@pytest.mark.django_db
def test_assignee_expression_candidate_users_due_date_and_priority(make_user) -> None:
    ann, bob, carl = make_user("ann"), make_user("bob"), make_user("carl")
    deploy_tiny(
        assignment=(
            'camunda:assignee="${owner}" camunda:candidateUsers="bob, carl" '
            'camunda:dueDate="P2D" camunda:priority="${urgency * 10}"'
        )
    )
    instance = start_instance(key="assigned", variables={"owner": "ann", "urgency": 7})
    task = instance.human_tasks.get()
    assert task.assignee == "ann" and task.status == "claimed"
    assert task.candidate_users == ["bob", "carl"]
    assert task.priority == 70
    assert task.due_at is not None
    assert abs(task.due_at - (timezone.now() + timedelta(days=2))) < timedelta(minutes=1)
    # Assigned to ann: the candidates do not get it in their list and cannot complete it.
    assert list(tasks_for_user(bob)) == []
    with pytest.raises(PermissionDenied):
        complete_human_task(task_id=task.id, user=carl)
    assert [t.id for t in tasks_for_user(ann)] == [task.id]
    complete_human_task(task_id=task.id, user=ann, variables={"note": "done"})
    instance.refresh_from_db()
    assert instance.status == "completed"


@pytest.mark.django_db
def test_candidate_users_see_an_unclaimed_task(make_user) -> None:
    bob, dora = make_user("bob"), make_user("dora")
    deploy_tiny(assignment='camunda:candidateUsers="bob"')
    instance = start_instance(key="assigned")
    task = instance.human_tasks.get()
    assert (task.assignee, task.status) == (None, "open")
    assert [t.id for t in tasks_for_user(bob)] == [task.id]
    assert list(tasks_for_user(dora)) == []


@pytest.mark.django_db
def test_a_task_naming_nobody_goes_to_the_person_who_started(make_user) -> None:
    eve = make_user("eve")
    deploy_tiny(assignment='camunda:priority="40"')
    instance = start_instance(key="assigned", actor=eve)
    assert instance.human_tasks.get().assignee == "eve"
