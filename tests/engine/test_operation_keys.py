"""Operation keys: a service given a key acts once for it, in its own transaction."""

import pytest

from engine.exceptions import InvalidInput
from engine.models import InstanceEvent, OperationKey, ProcessInstance
from engine.services import complete_human_task, start_instance
from engine.services.operation_keys import (
    KeyedOperation,
    OperationDoneBefore,
    OperationKeyReused,
)

pytestmark = pytest.mark.django_db
VARIABLES = {"amount": 250, "description": "Taxi", "requester": "bob"}


def test_a_start_with_a_used_key_starts_nothing(expense_definition, approver):
    key = KeyedOperation("start expense", "k-1", user=approver, fingerprint="a")
    first = start_instance(
        key="expense_approval", variables=VARIABLES, actor=approver, operation_key=key
    )
    with pytest.raises(OperationDoneBefore):
        start_instance(
            key="expense_approval", variables=VARIABLES, actor=approver, operation_key=key
        )
    assert list(ProcessInstance.objects.values_list("pk", flat=True)) == [first.pk]


def test_a_key_used_for_another_request_is_refused(expense_definition, approver):
    start_instance(
        key="expense_approval",
        variables=VARIABLES,
        actor=approver,
        operation_key=KeyedOperation("start", "k-1", user=approver, fingerprint="a"),
    )
    with pytest.raises(OperationKeyReused):
        start_instance(
            key="expense_approval",
            variables=VARIABLES,
            actor=approver,
            operation_key=KeyedOperation("start", "k-1", user=approver, fingerprint="b"),
        )
    assert ProcessInstance.objects.count() == 1


def test_a_failed_operation_leaves_its_key_free(expense_definition, approver):
    instance = start_instance(key="expense_approval", variables=VARIABLES, actor=approver)
    task = instance.human_tasks.get()
    key = KeyedOperation("complete", "click-1", user=approver)
    with pytest.raises(InvalidInput):
        complete_human_task(
            task_id=task.pk, user=approver, variables={"decision": 7}, operation_key=key
        )
    assert not OperationKey.objects.exists()
    complete_human_task(
        task_id=task.pk, user=approver, variables={"decision": "approve"}, operation_key=key
    )
    assert InstanceEvent.objects.filter(type="task_completed").count() == 1
    assert OperationKey.objects.get().user == approver


def test_keys_of_different_users_do_not_meet(expense_definition, approver, make_user):
    other = make_user("otto")
    for user in (approver, other):
        start_instance(
            key="expense_approval",
            variables=VARIABLES,
            actor=user,
            operation_key=KeyedOperation("start", "same", user=user),
        )
    assert ProcessInstance.objects.count() == 2
