"""The engine's state-changing operations. Edges call these and nothing else writes."""
from .human_tasks import claim_task, complete_human_task, unclaim_task
from .instances import start_instance
from .lifecycle import resume_instance, set_variables, suspend_instance, terminate_instance
from .service_jobs import retry_instance

__all__ = [
    "claim_task",
    "complete_human_task",
    "resume_instance",
    "retry_instance",
    "set_variables",
    "start_instance",
    "suspend_instance",
    "terminate_instance",
    "unclaim_task",
]
