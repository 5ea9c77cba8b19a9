"""Talking to the broker: sending Celery messages and asking how many wait in a queue.

These calls fail when the broker is unreachable; `engine.services.handover` decides what a
failure means (never an error for an operation that has committed).
"""

import base64
import json
from typing import Any

from celery import Celery, current_app

RUN_SERVICE_JOB = "baton.run_service_job"
DELIVER_EVENTS = "baton.deliver_events"
RUN_BATCH_CHUNK = "baton.run_batch_chunk"
DELIVER_WEBHOOKS = "baton.deliver_webhooks"
# Deliveries per Celery message (a broadcast to many instances is split into chunks).
DELIVERY_CHUNK = 50


def send_service_job(job_id: str, delay_seconds: float = 0) -> None:
    current_app.send_task(
        RUN_SERVICE_JOB, args=[job_id], countdown=delay_seconds if delay_seconds > 0 else None
    )


def send_batch_chunk(batch_id: str) -> None:
    current_app.send_task(RUN_BATCH_CHUNK, args=[batch_id])


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


def queue_message_counts(
    queues: list[str], app: Celery | None = None
) -> dict[str, tuple[int, dict[str, Any] | None]]:
    """For each queue: (messages waiting in the broker, the oldest one's Celery headers and
    args when the broker lets us peek at it, else None). Redis: LLEN over the queue's
    priority lists and LINDEX of the oldest message (kombu pushes on the left and pops on
    the right); RabbitMQ and others: a passive queue_declare's message count, no peek."""
    counts: dict[str, tuple[int, dict[str, Any] | None]] = {}
    with (app or current_app).connection_for_read() as connection:
        channel = connection.default_channel
        on_redis = type(connection.transport).__module__ == "kombu.transport.redis"
        redis_client = channel.client if on_redis else None
        for queue in queues:
            if redis_client is not None:
                counts[queue] = _redis_queue(channel, redis_client, queue)
                continue
            try:
                declared = channel.queue_declare(queue=queue, passive=True)
            except connection.channel_errors:
                counts[queue] = (0, None)  # a queue the broker does not know holds nothing
                channel = connection.channel()  # the failed declare closed the channel
                continue
            counts[queue] = (int(declared.message_count), None)
    return counts


def _redis_queue(channel: Any, client: Any, queue: str) -> tuple[int, dict[str, Any] | None]:
    # kombu keeps each priority in a list of its own, named by its own rule.
    steps = channel.priority_steps
    names = [channel._q_for_pri(queue, step) for step in steps]  # noqa: SLF001
    total = sum(int(client.llen(name)) for name in names)
    oldest: dict[str, Any] | None = None
    for name in names:  # the highest priority list is read first, as kombu does
        raw = client.lindex(name, -1)
        if raw is None:
            continue
        oldest = _peeked(raw)
        break
    return total, oldest


def _peeked(raw: bytes | str) -> dict[str, Any] | None:
    """The task name and arguments of a Celery message as kombu keeps it in Redis."""
    try:
        message = json.loads(raw)
        headers = message.get("headers") or {}
        body = message.get("body")
        args: Any = None
        if message.get("properties", {}).get("body_encoding") == "base64" and body:
            decoded = json.loads(base64.b64decode(body))
            args = decoded[0] if isinstance(decoded, list) and decoded else None
        return {"task": headers.get("task"), "id": headers.get("id"), "args": args}
    except (ValueError, TypeError, AttributeError):
        return None
