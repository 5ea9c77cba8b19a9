"""The engine's state-changing operations. Edges call these and nothing else writes."""

from .batches import cancel_batch, create_batch, preview_batch
from .human_tasks import claim_task, complete_human_task, unclaim_task
from .incidents import Retried, retry_instance
from .instances import start_instance
from .lifecycle import (
    cancel_instance,
    resume_instance,
    set_variables,
    suspend_instance,
    terminate_instance,
)
from .messages import correlate_message
from .migration import migrate_instance, plan_migration
from .repair import reset_instance, skip_task
from .retention import delete_finished_instances
from .signals import broadcast_signal

__all__ = [
    "Retried",
    "broadcast_signal",
    "cancel_batch",
    "cancel_instance",
    "claim_task",
    "complete_human_task",
    "correlate_message",
    "create_batch",
    "delete_finished_instances",
    "migrate_instance",
    "plan_migration",
    "preview_batch",
    "reset_instance",
    "resume_instance",
    "retry_instance",
    "set_variables",
    "skip_task",
    "start_instance",
    "suspend_instance",
    "terminate_instance",
    "unclaim_task",
]
