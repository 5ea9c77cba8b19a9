"""The rows every operation writes go through hand-written statements (engine.rows `Insert`,
`insert_rows`, `save_row`; the audit trail's `write_events`): each must store what the ORM's
`save()` and `bulk_create()` store, hand the rows back as the ORM does, and find the webhook
subscribers of the events in the same statement."""

import datetime
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from engine.models import (
    HumanTask,
    InstanceEvent,
    ProcessInstance,
    WebhookDelivery,
    WebhookSubscription,
)
from engine.rows import Insert, insert_rows, save_row
from engine.services import start_instance
from engine.services.audit import events_in_one_insert, record_event
from processes.models import ProcessDefinition
from tests.helpers import field_values

pytestmark = pytest.mark.django_db(transaction=True)
VARIABLES = {"amount": 7, "description": 'é "q" \\ \n', "requester": "bob"}


def _stored(row: Any) -> dict[str, Any]:
    return field_values(type(row).objects.get(pk=row.pk))


def _instance(expense_definition: ProcessDefinition) -> ProcessInstance:
    return start_instance(key="expense_approval", variables=VARIABLES, business_key="B-7")


def test_a_saved_row_holds_every_field_as_the_orm_stores_it(
    expense_definition: ProcessDefinition, approver: User
) -> None:
    instance = _instance(expense_definition)
    stamped = instance.updated_at
    instance.variables = {"nested": {"list": [1, 2.5, None, "ü"]}, "quote": "'; --"}
    instance.incident = {"kind": "script", "error": "x"}
    instance.status = ProcessInstance.Status.COMPLETED
    instance.completed_at = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    instance.cancel_requested_by = approver
    save_row(instance)

    assert instance.updated_at > stamped  # auto_now, as save() sets it
    assert _stored(instance) == field_values(instance)


def test_a_new_row_is_inserted_and_one_rolled_back_to_a_savepoint_is_inserted_again(
    expense_definition: ProcessDefinition,
) -> None:
    instance = ProcessInstance(definition=expense_definition, state={}, variables={"a": 1})

    def saved_then_rolled_back() -> None:
        with transaction.atomic():
            save_row(instance)
            assert not instance._state.adding
            raise RuntimeError("rolled back")

    with transaction.atomic():
        with pytest.raises(RuntimeError):
            saved_then_rolled_back()
        save_row(instance)  # the update finds no row: inserted, as the ORM's save() does
    assert _stored(instance) == field_values(instance)


def test_rows_with_arrays_and_json_are_inserted_as_bulk_create_inserts_them(
    expense_definition: ProcessDefinition, approver: User
) -> None:
    instance = _instance(expense_definition)
    tasks = [
        HumanTask(
            instance=instance,
            spiff_task_id=uuid.uuid4(),
            element_id="review",
            candidate_users=users,
            candidate_groups=["managers", 'we"ird'],
            form={"fields": [{"id": "x", "label": "ß"}]},
            completed_by=completer,
        )
        for users, completer in (([], None), (["a", "b,c", "{d}"], approver))
    ]
    assert not Insert(HumanTask).unnests  # an array column has its own cast: a VALUES list

    with CaptureQueriesContext(connection) as statements:
        insert_rows(tasks)

    assert len(statements.captured_queries) == 1
    for task in tasks:
        assert task.created_at is not None and not task._state.adding
        assert _stored(task) == field_values(task)


def test_an_array_element_longer_than_its_column_is_cut_as_the_orm_cuts_it(
    expense_definition: ProcessDefinition,
) -> None:
    instance = _instance(expense_definition)
    long_name = "g" * 200
    task = HumanTask(
        instance=instance, spiff_task_id=uuid.uuid4(), element_id="x", candidate_groups=[long_name]
    )
    insert_rows([task])
    task.candidate_users = [long_name]
    save_row(task)

    stored = HumanTask.objects.get(pk=task.pk)
    assert stored.candidate_groups == ["g" * 150] and stored.candidate_users == ["g" * 150]


def test_events_get_their_keys_and_one_statement_finds_their_subscribers(
    expense_definition: ProcessDefinition,
) -> None:
    instance = _instance(expense_definition)
    WebhookSubscription.objects.create(
        name="off",
        url="https://crm.example/off",
        secret_name="T",
        event_types=["completed"],
        enabled=False,
    )
    WebhookSubscription.objects.create(
        name="on", url="https://crm.example/on", secret_name="T", event_types=["completed"]
    )
    deliveries = WebhookDelivery.objects.count()

    with transaction.atomic():
        with CaptureQueriesContext(connection) as unheard, events_in_one_insert():
            record_event(instance, "task_claimed", element_id="x", payload={"k": "ü"})
        with events_in_one_insert():
            first = record_event(instance, "completed")
            second = record_event(instance, "terminated", payload={"reason": "r"})

    assert len(unheard.captured_queries) == 1  # nobody subscribed: the INSERT alone
    assert WebhookDelivery.objects.count() == deliveries + 1  # "on", for "completed" only
    delivery = WebhookDelivery.objects.latest("created_at")
    assert (delivery.subscription.name, delivery.event_type) == ("on", "completed")
    stored = InstanceEvent.objects.filter(pk__in=[first.pk, second.pk]).order_by("id")
    assert [(e.type, e.payload) for e in stored] == [
        ("completed", {}),
        ("terminated", {"reason": "r"}),
    ]
    assert first.pk < second.pk and first.created_at is not None
