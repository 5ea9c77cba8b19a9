"""Batch operations: one operator action applied to every instance a filter selects.

`create_batch` checks the operator and the arguments, selects the target instances once (one
`INSERT ... SELECT` of `BatchItem` rows numbered 1, 2, ..., nothing locked) and queues
`BATON_BATCH_PARALLEL_CHUNKS` chains of chunk messages. `run_batch_chunk` (a Celery task's
whole work) claims the next `CHUNK_SIZE` positions (moving the batch's cursor) and applies
the operation to each item through the operation's own service, so that each instance gets
its own short transaction with its row lock, rules and audit event; the events name the
batch. Then it records the chunk's outcomes and queues the next chunk of its chain, unless
the batch was cancelled meanwhile (a cancel stops between chunks) or every chunk is taken.

A chunk runs under a session advisory lock of its own, taken in the transaction that claims
it. If its worker dies, the lock goes with the connection, and the next message of the batch
(redelivered, another chain's, or the sweep's) takes the abandoned chunk first: items whose
instance already has an audit event naming the batch are recorded as done without running
again, so no instance is changed twice.
"""

import datetime
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from engine.actors import Person, as_user
from engine.exceptions import Conflict, EngineError, InvalidInput, NotFound
from engine.models import Batch, BatchItem, InstanceEvent, ProcessInstance
from engine.queueing import send_batch_chunk
from engine.selectors.batches import (
    BatchFilter,
    filtered_instances,
    sample_ids,
    status_breakdown,
)
from processes.models import ProcessDefinition

from .audit import on_behalf_of_batch
from .handover import outage
from .incidents import retry_instance
from .lifecycle import (
    cancel_instance,
    resume_instance,
    set_variables,
    suspend_instance,
    terminate_instance,
)
from .migration import migrate_instance, plan_migration
from .operators import require_operator
from .reasons import checked_reason
from .retention import FINISHED, delete_finished_instances
from .variables import check_variables

logger = logging.getLogger(__name__)

Operation = Batch.Operation
Outcome = BatchItem.Outcome
Status = ProcessInstance.Status
UNFINISHED = (Status.RUNNING, Status.WAITING, Status.SUSPENDED, Status.INCIDENT)
# The statuses an instance must have for the operation to change it; the others the filter
# matches are left out at selection (the dry run counts them). The service still decides.
ELIGIBLE_STATUSES: dict[str, tuple[str, ...]] = {
    Operation.SUSPEND: (Status.RUNNING, Status.WAITING, Status.INCIDENT),
    Operation.RESUME: (Status.SUSPENDED,),
    Operation.TERMINATE: UNFINISHED,
    # A suspended instance is not cancelled: its compensation could not run (resume it first).
    Operation.CANCEL: (Status.RUNNING, Status.WAITING, Status.INCIDENT),
    Operation.RETRY: (Status.INCIDENT,),
    Operation.MIGRATE: UNFINISHED,
    Operation.DELETE_FINISHED: FINISHED,
    Operation.SET_VARIABLES: UNFINISHED,
}
ARGUMENTS: dict[str, set[str]] = {
    Operation.SUSPEND: {"reason"},
    Operation.RESUME: set(),
    Operation.TERMINATE: {"reason"},
    Operation.CANCEL: {"reason"},
    Operation.RETRY: {"variables"},
    Operation.MIGRATE: {"version"},
    Operation.DELETE_FINISHED: {"finished_before"},
    Operation.SET_VARIABLES: {"variables", "remove"},
}
CHUNK_SIZE = 200
# At most this many chunks of one batch run at once (BATON_BATCH_PARALLEL_CHUNKS is capped).
PARALLEL_CHUNKS_LIMIT = 16
SAMPLE_SIZE = 20


@dataclass(frozen=True)
class BatchPreview:
    """What a batch would do (its dry run): how many instances the filter matches, how many
    of them the operation would change (`targets`), the statuses of the matched ones, some
    target ids and, for a migration, the plan of each of those."""

    operation: str
    matched: int
    targets: int
    matched_by_status: dict[str, int]
    sample: list[uuid.UUID]
    migration_plans: list[dict[str, Any]] = field(default_factory=list)


# -- creating ---------------------------------------------------------------------------------


def _reason(arguments: dict[str, Any], operation: str) -> str:
    return checked_reason(
        arguments.get("reason", ""),
        f"{operation} the instances",
        required=operation != Operation.SUSPEND,
    )


def _version(arguments: dict[str, Any], given: BatchFilter) -> int:
    version = arguments.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput("version must be a version number (1, 2, ...).")
    if not given.definition:
        raise InvalidInput("A migration batch needs filter.definition: the process key.")
    if not ProcessDefinition.objects.filter(key=given.definition, version=version).exists():
        raise NotFound(f"Process {given.definition!r} has no version {version}.")
    return version


def _finished_before(arguments: dict[str, Any]) -> str:
    value = arguments.get("finished_before")
    if value is None:
        return timezone.now().isoformat()
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidInput("finished_before must be an ISO 8601 date and time with a time zone.")
    return parsed.isoformat()


def check_arguments(
    operation: str, arguments: dict[str, Any], given: BatchFilter
) -> dict[str, Any]:
    """The operation's arguments, checked and normalised as the batch stores them."""
    if operation not in ARGUMENTS:
        raise InvalidInput(f"There is no batch operation {operation!r}.")
    if not isinstance(arguments, dict):
        raise InvalidInput("arguments must be a JSON object.")
    unknown = sorted(set(arguments) - ARGUMENTS[operation])
    if unknown:
        raise InvalidInput(f"{operation} takes no argument {', '.join(unknown)}.")
    if operation in (Operation.SUSPEND, Operation.TERMINATE, Operation.CANCEL):
        return {"reason": _reason(arguments, operation)}
    if operation == Operation.MIGRATE:
        return {"version": _version(arguments, given)}
    if operation == Operation.DELETE_FINISHED:
        return {"finished_before": _finished_before(arguments)}
    if operation == Operation.RETRY:
        variables, _ = check_variables(arguments.get("variables") or {})
        return {"variables": variables}
    if operation == Operation.SET_VARIABLES:
        if "variables" not in arguments and not arguments.get("remove"):
            raise InvalidInput("set_variables needs variables to set or names to remove.")
        remove = arguments.get("remove") or []
        if not isinstance(remove, list):
            raise InvalidInput("remove must be a list of variable names.")
        variables, names = check_variables(arguments.get("variables") or {}, remove)
        return {"variables": variables, "remove": names}
    return {}


def _targets(
    operation: str, arguments: dict[str, Any], given: BatchFilter
) -> tuple[QuerySet[ProcessInstance], QuerySet[ProcessInstance]]:
    """The instances the filter matches, and those of them the operation would change."""
    matched = filtered_instances(given)
    targets = matched.filter(status__in=ELIGIBLE_STATUSES[operation])
    if operation == Operation.MIGRATE:
        targets = targets.exclude(definition__version=arguments["version"])
    if operation == Operation.DELETE_FINISHED:
        targets = targets.filter(completed_at__lt=parse_datetime(arguments["finished_before"]))
    return matched, targets


def preview_batch(
    *, actor: Person, operation: str, arguments: dict[str, Any], given: BatchFilter
) -> BatchPreview:
    """The dry run of `create_batch`: the same checks and selection; nothing changes."""
    require_operator(actor, "run batch operations on")
    arguments = check_arguments(operation, arguments, given)
    matched, targets = _targets(operation, arguments, given)
    sample = sample_ids(targets, SAMPLE_SIZE)
    plans = []
    if operation == Operation.MIGRATE:
        for instance_id in sample:
            try:
                plan = plan_migration(
                    instance_id=instance_id, actor=actor, version=arguments["version"]
                )
                plans.append({"instance": str(instance_id), **plan.as_dict()})
            except EngineError as exc:
                plans.append({"instance": str(instance_id), "possible": False, "error": exc.detail})
    return BatchPreview(
        operation=operation,
        matched=matched.count(),
        targets=targets.count(),
        matched_by_status=status_breakdown(matched),
        sample=sample,
        migration_plans=plans,
    )


_SELECT_TARGETS = """
    INSERT INTO engine_batchitem (batch_id, position, instance_id, outcome, message)
    SELECT %s, row_number() OVER (ORDER BY target.id), target.id, '', ''
      FROM ({targets}) AS target
"""


def create_batch(
    *, actor: Person, operation: str, arguments: dict[str, Any], given: BatchFilter
) -> Batch:
    """Select the target instances once and queue the batch. The selection is one statement
    (no instance is locked); the work runs on workers, chunk by chunk."""
    require_operator(actor, "run batch operations on")
    arguments = check_arguments(operation, arguments, given)
    _, targets = _targets(operation, arguments, given)
    with transaction.atomic(durable=True):
        batch = Batch.objects.create(
            operation=operation,
            arguments=arguments,
            filter=given.as_json(),
            actor=as_user(actor),
        )
        sql, params = targets.values("id").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(_SELECT_TARGETS.format(targets=sql), [batch.pk, *params])
            batch.total = cursor.rowcount
        if batch.total == 0:
            batch.status, batch.finished_at = Batch.Status.COMPLETED, timezone.now()
        batch.save(update_fields=["total", "status", "finished_at", "updated_at"])
        parallel = min(settings.BATON_BATCH_PARALLEL_CHUNKS, PARALLEL_CHUNKS_LIMIT)
        chains = min(max(parallel, 1), -(-batch.total // CHUNK_SIZE))
        for _ in range(chains):
            _queue_on_commit(batch.pk)
    return batch


def cancel_batch(*, batch_id: uuid.UUID | str, actor: Person) -> Batch:
    """Stop a batch between chunks: the chunk under way finishes, no other one starts. The
    items not reached stay pending."""
    require_operator(actor, "cancel batch operations on")
    with transaction.atomic(durable=True):
        batch = Batch.objects.select_for_update(no_key=True).filter(pk=batch_id).first()
        if batch is None:
            raise NotFound(f"There is no batch {batch_id}.")
        if batch.is_finished:
            raise Conflict(f"The batch is {batch.status}; it cannot be cancelled.")
        batch.status, batch.finished_at = Batch.Status.CANCELLED, timezone.now()
        batch.save(update_fields=["status", "finished_at", "updated_at"])
    return batch


def _queue_on_commit(batch_id: uuid.UUID) -> None:
    transaction.on_commit(lambda: _queue(str(batch_id)))


def _queue(batch_id: str) -> None:
    """Hand the batch's next chunk to the broker; if it cannot be reached, the batch waits
    for `sweep_batches`."""
    if outage.recently_failed():
        return
    try:
        send_batch_chunk(batch_id)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep sends it later
        outage.failed(exc)
    else:
        outage.answered()


# -- running ----------------------------------------------------------------------------------


def _lock_key(batch_id: uuid.UUID | str, start: int) -> str:
    return f"baton.batch:{batch_id}:{start}"


def _try_chunk_lock(batch_id: uuid.UUID | str, start: int) -> bool:
    # A session-level advisory lock, held while the chunk runs: if its worker dies, Postgres
    # drops the connection and the lock with it, which lets another message take the chunk.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [_lock_key(batch_id, start)])
        return bool(cursor.fetchone()[0])


def _release_chunk_lock(batch_id: uuid.UUID | str, start: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [_lock_key(batch_id, start)])


@dataclass
class _Result:
    outcome: str
    message: str = ""


def run_batch_chunk(batch_id: str) -> None:
    """Work through one chunk of the batch (the whole work of one Celery message), then
    queue the next while unclaimed items remain."""
    if _run_chunk(batch_id):
        _queue(batch_id)


def _run_chunk(batch_id: str) -> bool:
    """Work on a chunk; whether another one is due."""
    batch = Batch.objects.select_related("actor").filter(pk=batch_id).first()
    if batch is None or batch.is_finished:
        return False
    if batch.status == Batch.Status.PENDING:
        Batch.objects.filter(pk=batch.pk, status=Batch.Status.PENDING).update(
            status=Batch.Status.RUNNING, updated_at=timezone.now()
        )
    start = _take_chunk(batch)
    if start is None:
        return False  # every chunk is taken; their runners finish the batch
    try:
        items = list(
            batch.items.filter(
                position__gte=start, position__lt=start + CHUNK_SIZE, outcome=Outcome.PENDING
            ).order_by("position")
        )
        results, stopped = _apply_chunk(batch, items)
        more = _record(batch.pk, [item for item in items if item.pk in results], results)
    finally:
        _release_chunk_lock(batch.pk, start)
    if stopped is not None:
        _fail(batch.pk, str(stopped) or "The batch's actor may no longer run it.")
        return False
    return more


def _chunk_start(position: int) -> int:
    return (position - 1) // CHUNK_SIZE * CHUNK_SIZE + 1


# Claim the next chunk: move the batch's cursor past it.
_CLAIM_SQL = """
    UPDATE engine_batch SET cursor = LEAST(cursor + %s, total), updated_at = now()
     WHERE id = %s AND status IN ('pending', 'running') AND cursor < total
 RETURNING cursor
"""


def _take_chunk(batch: Batch) -> int | None:
    """The first position of a chunk this worker now holds the lock of: a claimed chunk whose
    worker died (items still pending, lock free), or else the next unclaimed one. None when
    there is none. Claim and lock happen in one transaction, so that no other worker sees the
    claim before the lock is held."""
    abandoned = (
        batch.items.filter(outcome=Outcome.PENDING, position__lte=batch.cursor)
        .order_by("position")
        .values_list("position", flat=True)[: CHUNK_SIZE * PARALLEL_CHUNKS_LIMIT]
    )
    for start in sorted({_chunk_start(position) for position in abandoned}):
        if _try_chunk_lock(batch.pk, start):
            still = batch.items.filter(
                outcome=Outcome.PENDING, position__gte=start, position__lt=start + CHUNK_SIZE
            )
            if still.exists():
                return start
            _release_chunk_lock(batch.pk, start)  # finished just now by its worker
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [CHUNK_SIZE, batch.pk])
        row = cursor.fetchone()
        if row is None:
            return None
        start = _chunk_start(row[0])
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [_lock_key(batch.pk, start)])
    return start


def _apply_chunk(
    batch: Batch, items: list[BatchItem]
) -> tuple[dict[int, _Result], PermissionDenied | None]:
    """The outcome of each item worked on, and the refusal that stopped the batch, if any:
    its actor is no operator any more (checked again by each operation's service)."""
    # A chunk run again after its worker died: what the batch already changed is done.
    changed_before = set(
        InstanceEvent.objects.filter(
            instance_id__in=[item.instance_id for item in items], payload__batch=str(batch.pk)
        ).values_list("instance_id", flat=True)
    )
    results = {
        item.pk: _Result(Outcome.OK, "changed before its worker stopped")
        for item in items
        if item.instance_id in changed_before
    }
    todo = [item for item in items if item.instance_id not in changed_before]
    with on_behalf_of_batch(batch.pk) as scope:
        try:
            if batch.operation == Operation.DELETE_FINISHED:
                results.update(_delete_chunk(batch, todo))
                return results, None
            apply = _OPERATIONS[batch.operation]
            for item in todo:
                results[item.pk] = _apply_one(apply, batch, item.instance_id, scope.touched)
        except PermissionDenied as exc:
            return results, exc
    return results, None


def _apply_one(
    apply: Callable[[Batch, uuid.UUID], object],
    batch: Batch,
    instance_id: uuid.UUID,
    touched: set[uuid.UUID],
) -> _Result:
    try:
        apply(batch, instance_id)
    except (Conflict, NotFound) as exc:
        return _Result(Outcome.SKIPPED, _explained(exc))
    except EngineError as exc:
        return _Result(Outcome.FAILED, _explained(exc))
    except (PermissionDenied, DatabaseError):
        raise  # the whole batch (or this chunk) stops, not this instance
    except Exception as exc:
        logger.exception("Batch %s failed on instance %s", batch.pk, instance_id)
        return _Result(Outcome.FAILED, f"{type(exc).__name__}: {exc}"[:2000])
    if instance_id not in touched:
        return _Result(Outcome.SKIPPED, "Nothing to change.")
    return _Result(Outcome.OK)


def _explained(exc: EngineError) -> str:
    """The refusal with the errors it lists (a migration's elements without counterpart)."""
    if isinstance(exc.errors, list) and exc.errors:
        parts = [
            f"{e.get('element_id', '')}: {e.get('message', '')}" if isinstance(e, dict) else str(e)
            for e in exc.errors
        ]
        return f"{exc.detail} ({'; '.join(parts)})"
    return exc.explained()


def _actor(batch: Batch) -> Person:
    if batch.actor is None:
        raise PermissionDenied("The user who started the batch no longer exists.")
    return batch.actor


_OPERATIONS: dict[str, Callable[[Batch, uuid.UUID], object]] = {
    Operation.SUSPEND: lambda b, i: suspend_instance(
        instance_id=i, actor=_actor(b), reason=b.arguments.get("reason", "")
    ),
    Operation.RESUME: lambda b, i: resume_instance(instance_id=i, actor=_actor(b)),
    Operation.TERMINATE: lambda b, i: terminate_instance(
        instance_id=i, actor=_actor(b), reason=b.arguments["reason"]
    ),
    Operation.CANCEL: lambda b, i: cancel_instance(
        instance_id=i, actor=_actor(b), reason=b.arguments["reason"]
    ),
    Operation.RETRY: lambda b, i: retry_instance(
        instance_id=str(i), actor=_actor(b), variables=b.arguments.get("variables") or {}
    ),
    Operation.MIGRATE: lambda b, i: migrate_instance(
        instance_id=i, actor=_actor(b), version=b.arguments["version"]
    ),
    Operation.SET_VARIABLES: lambda b, i: set_variables(
        instance_id=i,
        actor=_actor(b),
        variables=b.arguments.get("variables") or {},
        remove=b.arguments.get("remove") or [],
    ),
}


def _delete_chunk(batch: Batch, items: list[BatchItem]) -> dict[int, _Result]:
    """Deletion is the retention service's own bulk operation, run on the chunk's ids."""
    ids = [item.instance_id for item in items]
    before = parse_datetime(batch.arguments["finished_before"])
    assert before is not None  # checked when the batch was created
    existing = set(ProcessInstance.objects.filter(pk__in=ids).values_list("pk", flat=True))
    delete_finished_instances(actor=_actor(batch), finished_before=before, instance_ids=ids)
    kept = set(ProcessInstance.objects.filter(pk__in=ids).values_list("pk", flat=True))
    results = {}
    for item in items:
        if item.instance_id not in existing:
            results[item.pk] = _Result(Outcome.SKIPPED, "The instance was already deleted.")
        elif item.instance_id in kept:
            results[item.pk] = _Result(
                Outcome.SKIPPED, f"The instance did not finish before {before.isoformat()}."
            )
        else:
            results[item.pk] = _Result(Outcome.OK)
    return results


def _record(batch_id: uuid.UUID, items: list[BatchItem], results: dict[int, _Result]) -> bool:
    """The chunk's outcomes, the counters and the cursor in one short transaction; whether
    the batch goes on: not when it was cancelled meanwhile or every chunk is taken."""
    for item in items:
        item.outcome, item.message = results[item.pk].outcome, results[item.pk].message
    counts = {outcome: 0 for outcome in Outcome.values}
    for result in results.values():
        counts[result.outcome] += 1
    with transaction.atomic(durable=True):
        batch = Batch.objects.select_for_update(no_key=True).get(pk=batch_id)
        BatchItem.objects.bulk_update(items, ["outcome", "message"])
        batch.done += len(items)
        batch.skipped += counts[Outcome.SKIPPED]
        batch.failed += counts[Outcome.FAILED]
        active = batch.status in (Batch.Status.PENDING, Batch.Status.RUNNING)
        if active and batch.done >= batch.total:
            batch.status, batch.finished_at = Batch.Status.COMPLETED, timezone.now()
        batch.save(
            update_fields=["done", "skipped", "failed", "status", "finished_at", "updated_at"]
        )
        return batch.status == Batch.Status.RUNNING and batch.cursor < batch.total


def _fail(batch_id: uuid.UUID, error: str) -> None:
    Batch.objects.filter(
        pk=batch_id, status__in=[Batch.Status.PENDING, Batch.Status.RUNNING]
    ).update(
        status=Batch.Status.FAILED,
        error=error,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


def sweep_batches() -> int:
    """Queue again the batches that made no progress for a while (their message was lost, or
    the broker was down when it was due). A batch whose chunk still runs keeps its lock, and
    the extra message ends at once."""
    stalled_since = timezone.now() - datetime.timedelta(
        seconds=settings.BATON_BATCH_STALLED_SECONDS
    )
    stalled = list(
        Batch.objects.filter(
            status__in=[Batch.Status.PENDING, Batch.Status.RUNNING], updated_at__lt=stalled_since
        ).values_list("pk", flat=True)[:100]
    )
    for batch_id in stalled:
        _queue(str(batch_id))
    return len(stalled)
