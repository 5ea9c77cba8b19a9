"""Starting process instances."""

from functools import cache
from typing import Any

from django.db import connection, transaction

from engine.actors import Actor, as_user
from engine.bpmn.events import how_it_starts, prepare_start
from engine.bpmn.failures import run_engine_steps
from engine.bpmn.run import Run
from engine.bpmn.walks import set_initiator, set_start_data
from engine.exceptions import Conflict, InvalidInput, NotFound
from engine.forms import clean_submission
from engine.jsonable import check_json_depth
from engine.models import ProcessInstance
from engine.rows import Columns, column, table
from processes.models import ProcessDefinition

from .audit import events_in_one_insert, record_event
from .instance_store import new_run, persist_workflow
from .operation_keys import KeyedOperation, reserve_once
from .running import running_as


@cache
def _definition_read() -> tuple[Columns, str]:
    """The latest definition of a key, or the one of a key and version (its large columns
    left deferred): asked by every start, so written once rather than built by the ORM each
    time (engine.rows)."""
    definition = Columns(ProcessDefinition, "d", leave_out=ProcessDefinition.BULK_FIELDS)
    version = column(ProcessDefinition, "version", "d")
    number = ProcessDefinition._meta.get_field("version").cast_db_type(connection)
    # Only names from the models' metadata are put together here; the values are parameters.
    return definition, (
        f"SELECT {definition.sql} FROM {table(ProcessDefinition)} AS d "  # noqa: S608
        f"WHERE {column(ProcessDefinition, 'key', 'd')} = %s "
        f"AND (%s::{number} IS NULL OR {version} = %s::{number}) ORDER BY {version} DESC LIMIT 1"
    )


def _read_definition(key: str, version: int | None) -> ProcessDefinition | None:
    field = ProcessDefinition._meta.get_field("version").get_internal_type()
    low, high = connection.ops.integer_field_range(field)
    if version is not None and not low <= version <= high:
        return None  # no version has such a number (as the ORM answers such a lookup)
    columns, sql = _definition_read()
    found = columns.read(sql, [key, version, version])
    return found[0] if found else None


def _definition(key: str, version: int | None) -> ProcessDefinition:
    definition = _read_definition(key, version)
    if definition is None:
        which = f"version {version} of " if version is not None else ""
        raise NotFound(f"There is no {which}process definition with key {key!r}.")
    if not definition.is_executable:
        raise InvalidInput(f"Process {key!r} is not executable.")
    return definition


def start_instance(
    *,
    key: str,
    variables: dict[str, Any] | None = None,
    business_key: str | None = None,
    version: int | None = None,
    actor: Actor = None,
    operation_key: KeyedOperation | None = None,
) -> ProcessInstance:
    """Start the latest (or the given) version of process `key` and run it to its first wait state.

    A script or expression of a task that fails does not undo the start: the instance is
    stored in `incident` at that task (with an `incident` event) and returned, for an operator
    to repair and retry. Only a failure that belongs to no task raises `ScriptFailed`, and
    then nothing is left behind. With `operation_key`, a second start with that key starts
    nothing and raises `OperationDoneBefore`.
    """
    definition, run = prepare_start_run(key=key, variables=variables, version=version, actor=actor)
    with transaction.atomic(durable=True):
        reserve_once(operation_key)
        return create_started_instance(definition, run, business_key=business_key, actor=actor)


def prepare_start_run(
    *, key: str, variables: dict[str, Any] | None, version: int | None, actor: Actor
) -> tuple[ProcessDefinition, Run]:
    """The definition and a new run at its none start event, with the start data set
    (checked against a start form). Nothing is written yet."""
    if variables is not None and not isinstance(variables, dict):
        raise InvalidInput("variables must be a JSON object.")
    check_json_depth(variables, "variables")
    definition = _definition(key, version)
    if definition.start_form:  # a start form holds every way in to what it declares
        variables = clean_submission(definition.start_form, variables or {})
    run = new_run(definition.pk)
    starts = how_it_starts(run.workflow)
    if starts is not None:
        raise Conflict(
            f"Process {key!r} starts {starts}; it has no none start event to start it by hand."
        )
    prepare_start(run.workflow)  # at the none start event; without one, as if its event happened
    set_start_data(run.workflow, variables)
    starter = as_user(actor)
    set_initiator(run.workflow, starter.get_username() if starter is not None else None)
    return definition, run


def create_started_instance(
    definition: ProcessDefinition, run: Run, *, business_key: str | None, actor: Actor
) -> ProcessInstance:
    """Store a prepared run as a new instance, run to its first wait state (in the caller's
    transaction)."""
    with events_in_one_insert():
        instance = ProcessInstance(
            definition=definition,
            business_key=business_key or None,
            status=ProcessInstance.Status.RUNNING,
            started_by=as_user(actor),
        )
        # The row is inserted once, with the state of the first run (`persist_workflow`);
        # its audit events (and a data store's) are written after it, in one INSERT.
        record_event(
            instance,
            "started",
            actor=actor,
            payload={"version": definition.version, "business_key": instance.business_key},
        )
        with running_as(actor, instance):
            run_engine_steps(run)
        persist_workflow(instance, run, actor=actor, fresh=True)
    return instance
