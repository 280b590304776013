"""Publishing task messages: the app's pooled producer, and many messages in one round trip.

Every publish goes through the producer pool Celery keeps per process (one broker connection
reused, never a connection per message). `publish_many` holds one producer for the whole batch
and, on Redis, sends all its messages in one pipeline; RabbitMQ publishes them one by one on
the same channel, each confirmed by the broker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any, NamedTuple

from workers.celery_app import app, declare_topology, is_rabbitmq


class Message(NamedTuple):
    task_name: str
    kwargs: dict[str, Any]
    countdown: float | None = None


_topology_lock = threading.Lock()
_topology_declared = False


def _ensure_topology() -> None:
    """On RabbitMQ, declare the queues and delay exchanges once per process: a publisher can
    run before any worker has declared them (a fresh virtual host), and a countdown sent to a
    delay exchange that does not exist would be refused."""
    global _topology_declared
    if _topology_declared or not is_rabbitmq(app.conf.broker_url):
        return
    with _topology_lock:
        if not _topology_declared:
            with app.connection_for_write() as connection:
                declare_topology(app, connection)
            _topology_declared = True


def publish(task_name: str, kwargs: dict[str, Any], countdown: float | None = None) -> None:
    _ensure_topology()
    app.send_task(task_name, kwargs=kwargs, countdown=countdown or None)


def publish_many(messages: Iterable[Message | tuple[str, dict[str, Any], float | None]]) -> int:
    """Publish every message with one pooled producer; returns how many were sent.

    If the broker fails mid-batch the error propagates: messages are hints, and the rows they
    point to are swept again once the redelivery allowance has passed.
    """
    _ensure_topology()
    sent = 0
    with app.producer_or_acquire() as producer:
        batch = producer.batch() if hasattr(producer, "batch") else nullcontext()
        with batch:
            for task_name, kwargs, countdown in messages:
                app.send_task(task_name, kwargs=kwargs, countdown=countdown or None,
                              producer=producer)
                sent += 1
    return sent
