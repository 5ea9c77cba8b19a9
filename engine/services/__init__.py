"""The engine's state-changing operations. Edges call these and nothing else writes."""
from .human_tasks import claim_task, complete_human_task, unclaim_task
from .instances import start_instance
from .service_jobs import retry_instance

__all__ = ["claim_task", "complete_human_task", "retry_instance", "start_instance", "unclaim_task"]
