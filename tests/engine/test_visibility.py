"""Who may see an instance and a task: every list, detail and check gives the same answer.

README ("Who may do what"): an instance is read by whoever started it, the assignee or a
candidate of one of its tasks, and operators; a task is seen by its assignee and candidates
(a candidate of a task claimed by someone else still sees it, and gets a 409 on claiming).
"""

import pytest
from django.core.exceptions import PermissionDenied

from engine import selectors
from engine.models import HumanTask, ProcessInstance
from engine.services import claim_task, complete_human_task, start_instance

pytestmark = pytest.mark.django_db
EXPENSE = {"amount": 250, "description": "Taxi", "requester": "bob"}


@pytest.fixture
def claimed(expense_definition, make_user, approver) -> HumanTask:
    """The expense task of an instance started by rita, claimed by approver (alice)."""
    instance = start_instance(
        key="expense_approval", variables=EXPENSE, business_key="E-1", actor=make_user("rita")
    )
    return claim_task(task_id=instance.human_tasks.get().id, user=approver)


def _listed(user, instance: ProcessInstance) -> bool:
    return selectors.visible_instances(user).filter(pk=instance.pk).exists()


def _detail_allowed(user, instance: ProcessInstance) -> bool:
    try:
        selectors.instance_detail_for(instance.pk, user)
    except PermissionDenied:
        return False
    return True


def test_a_candidate_of_a_claimed_task_sees_its_instance_in_the_list_and_the_detail(
    claimed, approver2
):
    instance = claimed.instance
    assert _detail_allowed(approver2, instance)
    assert _listed(approver2, instance)


def test_list_and_detail_agree_for_everyone(
    claimed, approver, approver2, legal_user, outsider, make_user
):
    instance = claimed.instance
    operator = make_user("otto", "operators")
    expected = {
        approver: True,
        approver2: True,
        instance.started_by: True,
        operator: True,
        legal_user: False,
        outsider: False,
    }
    for user, sees in expected.items():
        assert (_listed(user, instance), _detail_allowed(user, instance)) == (sees, sees), user


def test_after_completion_the_same_people_still_see_the_instance(
    claimed, approver, approver2, outsider
):
    complete_human_task(task_id=claimed.id, user=approver, variables={"decision": "approve"})
    instance = claimed.instance
    for user, sees in {approver: True, approver2: True, outsider: False}.items():
        assert (_listed(user, instance), _detail_allowed(user, instance)) == (sees, sees), user


def test_the_api_list_shows_exactly_the_instances_the_detail_serves(
    claimed, api_client_for, approver2, outsider
):
    instance_url = f"/api/v1/instances/{claimed.instance_id}/"
    for user, status in ((approver2, 200), (outsider, 403)):
        client = api_client_for(user)
        ids = [row["id"] for row in client.get("/api/v1/instances/").json()["results"]]
        assert client.get(instance_url).status_code == status, user
        assert (str(claimed.instance_id) in ids) == (status == 200), user


def test_a_candidate_sees_a_task_claimed_by_someone_else_but_it_is_not_in_their_work(
    claimed, approver2, outsider
):
    assert selectors.task_detail_for(claimed.id, approver2) == claimed
    assert not selectors.tasks_for_user(approver2).filter(pk=claimed.pk).exists()
    assert selectors.open_task_count(approver2) == 0
    with pytest.raises(PermissionDenied):
        selectors.task_detail_for(claimed.id, outsider)
