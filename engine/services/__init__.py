"""The engine's state-changing operations. Edges call these and nothing else writes."""
from .human_tasks import claim_task, complete_human_task, unclaim_task
from .instances import start_instance
from .lifecycle import resume_instance, set_variables, suspend_instance, terminate_instance
from .messages import correlate_message
from .service_jobs import retry_instance
from .signals import broadcast_signal

__all__ = [
    "broadcast_signal",
    "claim_task",
    "complete_human_task",
    "correlate_message",
    "resume_instance",
    "retry_instance",
    "set_variables",
    "start_instance",
    "suspend_instance",
    "terminate_instance",
    "unclaim_task",
]
