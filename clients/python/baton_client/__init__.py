"""A small client of Baton's REST API (httpx), with a worker loop for external tasks.

from baton_client import BatonClient, BpmnError, Worker

client = BatonClient("https://baton.example.org", token="...")
worker = Worker(client, worker_id="charger-1")

@worker.topic("payments.charge", lock_duration=60_000)
def charge(task):
    if task.variables["cents"] > 100_000:
        raise BpmnError("CARD_DECLINED", "over the limit")
    return {"receipt": "R-1"}  # variables to complete the task with

worker.run()  # fetch (long-polling), handle, complete; forever (or stop())
"""

from .client import ApiError, BatonClient, ExternalTask
from .models import (
    Batch,
    BatchItem,
    BatchPreview,
    Instance,
    Job,
    Queue,
    Schedule,
    Task,
    WebhookDelivery,
    WebhookSubscription,
)
from .worker import BpmnError, Worker

__all__ = [
    "ApiError",
    "Batch",
    "BatchItem",
    "BatchPreview",
    "BatonClient",
    "BpmnError",
    "ExternalTask",
    "Instance",
    "Job",
    "Queue",
    "Schedule",
    "Task",
    "WebhookDelivery",
    "WebhookSubscription",
    "Worker",
]
