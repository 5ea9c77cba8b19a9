"""The locking reads of every instance operation are hand-written statements
(engine/services/instance_store.py with engine/rows.py): each must give the models the ORM
gives, with the instance's definition at hand (less its large columns) and nothing more to
read."""

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from engine.exceptions import NotFound
from engine.models import HumanTask, ProcessInstance, ServiceJob
from engine.services import start_instance
from engine.services.instance_store import (
    lock_instance,
    lock_instance_and_job,
    lock_instance_of_task,
)
from tests.engine.service_diagrams import sequence, service_task
from tests.engine.service_fixtures import jobs_for_no_worker
from tests.helpers import deploy_document, field_values

pytestmark = pytest.mark.django_db(transaction=True)
EXPENSE_VARIABLES = {"amount": 7, "description": 'é "q"', "requester": "bob"}


def _as_the_orm_reads_it(instance: ProcessInstance) -> None:
    stored = ProcessInstance.objects.select_related("definition").get(pk=instance.pk)
    assert field_values(instance) == field_values(stored)
    assert isinstance(instance.state, dict) and isinstance(instance.variables, dict)
    with CaptureQueriesContext(connection) as more:
        definition = instance.definition
    assert more.captured_queries == []  # read with the instance
    assert (definition.key, definition.version) == (
        stored.definition.key,
        stored.definition.version,
    )
    assert {"spec", "bpmn_xml", "elements"} <= definition.get_deferred_fields()


def test_an_instance_locked_by_its_id_or_its_task_is_the_orm_s(expense_definition) -> None:
    started = start_instance(
        key="expense_approval", variables=EXPENSE_VARIABLES, business_key="B-1"
    )
    ProcessInstance.objects.filter(pk=started.pk).update(incident={"kind": "script", "error": "x"})
    task = HumanTask.objects.get(instance=started)
    with transaction.atomic():
        _as_the_orm_reads_it(lock_instance(started.pk))
        _as_the_orm_reads_it(lock_instance_of_task(task.pk))
        _as_the_orm_reads_it(lock_instance_of_task(str(task.pk)))


def test_an_instance_and_its_job_locked_together_are_the_orm_s(db: None) -> None:
    call = service_task("call", "'http://127.0.0.1:9/x'", headers={"X-A": "1"})
    deploy_document(sequence("one_call", [call]), "one_call.bpmn")
    with jobs_for_no_worker():
        started = start_instance(key="one_call", variables={"n": 1})
    job = ServiceJob.objects.get(instance=started)
    ServiceJob.objects.filter(pk=job.pk).update(result={"body": [1, {"a": None}]}, history=[{}])
    with transaction.atomic():
        instance, locked = lock_instance_and_job(job.pk, missing="gone")
        _as_the_orm_reads_it(instance)
        assert model_to_dict(locked) == model_to_dict(ServiceJob.objects.get(pk=job.pk))
        assert field_values(locked) == field_values(ServiceJob.objects.get(pk=job.pk))
        assert locked.instance is instance
        _, same = lock_instance_and_job(str(job.pk), missing="gone", kind=job.kind)
        assert same.pk == job.pk


def test_what_is_not_there_is_not_found(expense_definition) -> None:
    other = "00000000-0000-0000-0000-000000000000"
    with transaction.atomic():
        with pytest.raises(NotFound, match="There is no instance"):
            lock_instance(other)
        with pytest.raises(NotFound, match="There is no task"):
            lock_instance_of_task(other)
        with pytest.raises(NotFound, match="gone"):
            lock_instance_and_job(other, missing="gone")


def test_a_locking_read_outside_a_transaction_is_refused(expense_definition) -> None:
    started = start_instance(key="expense_approval", variables=EXPENSE_VARIABLES)
    # It would lock nothing: the lock would end with the statement.
    with pytest.raises(TransactionManagementError):
        lock_instance(started.pk)


def test_an_id_that_is_no_id_is_not_found(expense_definition) -> None:
    with transaction.atomic():
        with pytest.raises(NotFound):
            lock_instance("not-a-uuid")
        with pytest.raises(NotFound):
            lock_instance_of_task("42")
        with pytest.raises(NotFound):
            lock_instance_and_job("x", missing="gone")
