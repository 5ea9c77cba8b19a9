"""Talking to the broker: sending Celery messages and asking how many wait in a queue.

These calls fail when the broker is unreachable; `engine.services.handover` decides what a
failure means (never an error for an operation that has committed).
"""

from celery import current_app

RUN_SERVICE_JOB = "baton.run_service_job"
DELIVER_EVENTS = "baton.deliver_events"
DELIVER_WEBHOOKS = "baton.deliver_webhooks"
# Deliveries per Celery message (a broadcast to many instances is split into chunks).
DELIVERY_CHUNK = 50


def send_service_job(job_id: str, delay_seconds: float = 0) -> None:
    current_app.send_task(
        RUN_SERVICE_JOB, args=[job_id], countdown=delay_seconds if delay_seconds > 0 else None
    )


def send_event_deliveries(delivery_ids: list[str]) -> None:
    for start in range(0, len(delivery_ids), DELIVERY_CHUNK):
        current_app.send_task(DELIVER_EVENTS, args=[delivery_ids[start : start + DELIVERY_CHUNK]])


def send_webhook_deliveries(delivery_ids: list[str], delay_seconds: float = 0) -> None:
    countdown = delay_seconds if delay_seconds > 0 else None
    for start in range(0, len(delivery_ids), DELIVERY_CHUNK):
        current_app.send_task(
            DELIVER_WEBHOOKS,
            args=[delivery_ids[start : start + DELIVERY_CHUNK]],
            countdown=countdown,
        )


def jobs_waiting_in_queue() -> int:
    """How many messages wait in the service-job queue (not those a worker has taken).
    A queue the broker does not know (Redis drops an empty one) holds none."""
    with current_app.connection_for_read() as connection:
        channel = connection.default_channel
        try:
            declared = channel.queue_declare(
                queue=current_app.conf.task_default_queue, passive=True
            )
        except connection.channel_errors:
            return 0
        return int(declared.message_count)
