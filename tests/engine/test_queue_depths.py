"""Queue depths on RabbitMQ: a passive queue_declare counts the messages (no peek there), a
queue the broker does not know holds none. The broker counts a published message a moment
after the publish returns (seen under a loaded machine): the test waits for the count."""

import uuid

import pytest
from celery import Celery

from engine.queueing import queue_message_counts
from tests.faults.stack import wait_until

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def test_rabbitmq_queues_are_counted_by_a_passive_declare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery would prefer it
    app = Celery("queue-depths-test", broker=RABBITMQ)
    with app.connection_for_read() as connection:
        assert connection.transport.driver_type == "amqp"
    name = f"baton-test-{uuid.uuid4().hex[:8]}"
    try:
        for _ in range(3):
            app.send_task("baton.run_service_job", args=["x"], queue=name)
        expected = {f"{name}-missing": (0, None), name: (3, None)}
        # The broker counts a message once it has taken it from the publishing channel.
        wait_until(
            lambda: queue_message_counts([f"{name}-missing", name], app=app) == expected,
            timeout=10,
            what="the broker to count the three messages",
        )
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(name)
        app.close()
