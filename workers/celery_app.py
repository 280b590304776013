"""The Celery application: JSON only, late acks, one queue per domain, Redis or RabbitMQ.

Routing is by task-name prefix, so a service that enqueues `<queue>.…` by name with
`send_task` lands on that queue without knowing our routing table. The queues and the task
modules are those the installed components declare (workers/components.py).

The broker is chosen by the scheme of BROKER_URL: `redis://` or `amqp://` (RabbitMQ). On
RabbitMQ the contract queues are durable quorum queues (replicated, and they drop a poison
message after a delivery limit), publishes wait for the broker's confirm, and countdowns use
Celery's native delayed delivery (TTL queues in the broker), because a quorum queue cannot
give a worker the extra prefetch that holding ETA messages in memory needs.
"""

from __future__ import annotations

import logging
import os
import sys

from celery import Celery
from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_shutdown,
)
from kombu import Connection, Exchange, Queue
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)
from sqlalchemy import text
from tenacity import Retrying, retry_if_exception_type, wait_fixed

from workers import components, logs, per_process
from workers.db import dispose_engine, get_engine
from workers.settings import get_settings

log = logging.getLogger(__name__)

QUEUES = components.queues()


def route_by_prefix(name: str, args, kwargs, options, task=None, **kw) -> dict | None:
    prefix = name.split(".", 1)[0]
    return {"queue": prefix} if prefix in QUEUES else None


# A message redelivered this many times (each delivery killed its worker, say) is dropped by a
# quorum queue: messages are hints, and the row in PostgreSQL brings the work back.
QUORUM_DELIVERY_LIMIT = 20


def is_rabbitmq(url: str) -> bool:
    return url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


def contract_queues(broker_url: str) -> list[Queue]:
    if not is_rabbitmq(broker_url):
        return [Queue(name, Exchange(name), routing_key=name) for name in QUEUES]
    # Topic exchanges: native delayed delivery re-routes a due message through them by its
    # routing key, which a direct exchange cannot do.
    return [Queue(name, Exchange(name, type="topic"), routing_key=name, durable=True,
                  queue_arguments={"x-queue-type": "quorum",
                                   "x-delivery-limit": QUORUM_DELIVERY_LIMIT})
            for name in QUEUES]


def broker_options(broker_url: str, visibility_timeout_s: int) -> dict:
    if is_rabbitmq(broker_url):
        return {
            "broker_transport_options": {"confirm_publish": True},
            "worker_detect_quorum_queues": True,
            "broker_native_delayed_delivery_queue_type": "quorum",
            # A connection lost mid-task redelivers the message; the step is idempotent.
            "worker_cancel_long_running_tasks_on_connection_loss": False,
        }
    return {
        "broker_transport_options": {"visibility_timeout": visibility_timeout_s},
        # Kombu's Redis transport with a reused client per channel and a restore of unacked
        # messages that cannot stop a worker (workers/redis_transport.py).
        "broker_transport": "workers.redis_transport:Transport",
    }


def declare_topology(app: Celery, connection: Connection) -> None:
    """Declare the contract queues and the delayed-delivery exchanges on RabbitMQ.

    A worker does this when it starts; a publisher that may run first (the API on a fresh
    vhost) calls it too, so a countdown never goes to an exchange that does not exist yet.
    """
    if not is_rabbitmq(app.conf.broker_url):
        return
    declare_native_delayed_delivery_exchanges_and_queues(connection, "quorum")
    channel = connection.default_channel
    for queue in app.amqp.queues.values():
        queue.bind(channel).declare()
        bind_queue_to_native_delayed_delivery_exchange(connection, queue)


class CelgateCelery(Celery):
    """Celery with one RabbitMQ fix: a countdown under one second is sent as one second.

    Native delayed delivery routes by whole seconds (`int(countdown)`, the worker holds the
    rest as an ETA) and refuses a countdown that truncates to zero. Redis keeps exact ones.
    """

    def send_task(self, name, args=None, kwargs=None, countdown=None, eta=None, **options):
        if countdown and 0 < countdown < 1 and is_rabbitmq(self.conf.broker_url):
            countdown = 1.0
        return super().send_task(name, args, kwargs, countdown, eta, **options)


def create_app() -> Celery:
    components.read_settings()  # a bad value of any component's settings stops us here
    settings = get_settings()
    app = CelgateCelery("celgate", broker=settings.broker_url)
    app.conf.update(
        include=components.task_modules() + settings.extra_import_modules,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=settings.worker_prefetch_multiplier,
        task_queues=contract_queues(settings.broker_url),
        task_default_queue="workers",
        task_routes=(route_by_prefix,),
        broker_connection_retry_on_startup=True,
        # A worker waits for a broker that is away for long instead of exiting after N tries.
        broker_connection_max_retries=None,
        # Checks every message before Celery dispatches it: none can stop a worker.
        worker_consumer="workers.consumer:GuardedConsumer",
        enable_utc=True,
        timezone="UTC",
        # Flower shows every task only when workers send events, the "sent" one included.
        worker_send_task_events=settings.worker_send_task_events,
        task_send_sent_event=settings.worker_send_task_events,
        beat_schedule={
            "sweep": {
                "task": "workers.sweep",
                "schedule": settings.sweep_interval_s,
                "options": {"expires": settings.sweep_interval_s * 2},
            },
        },
        **broker_options(settings.broker_url, settings.broker_visibility_timeout_s),
    )
    return app


app = create_app()


@setup_logging.connect
def _our_logs(**_: object) -> None:
    # Connecting this signal stops Celery from installing its own text handlers.
    logs.configure_logging()


@task_prerun.connect
def _bind_task_ids(task_id: str, task, kwargs=None, **_: object) -> None:
    logs.task_started(task_id, task.name, kwargs or {})


@task_postrun.connect
def _unbind_task_ids(task_id: str, **_: object) -> None:
    logs.task_finished(task_id)


@worker_init.connect
def _before_the_pool_starts(**_: object) -> None:
    """In the worker's parent, before it forks: wait for the database, serve metrics."""
    wait_for_database()
    settings = get_settings()
    if settings.worker_metrics_port:
        from workers import metrics

        try:
            metrics.serve_worker_metrics(settings.worker_metrics_host,
                                         settings.worker_metrics_port)
        except OSError as exc:
            raise SystemExit(f"cannot serve worker metrics on {settings.worker_metrics_host}:"
                             f"{settings.worker_metrics_port}: {exc.strerror}") from None


@worker_shutdown.connect
def _after_the_worker(**_: object) -> None:
    from workers import metrics

    metrics.remove_run_dir()


@worker_process_init.connect
def _fresh_pool_in_child(**_: object) -> None:
    # Pools and clients inherited through fork share sockets with the parent.
    dispose_engine()
    per_process.forget_all()


def wait_for_database() -> None:
    """Block until PostgreSQL answers: a worker says "ready" only when it can do its work."""
    def attempt() -> None:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))

    def note(state) -> None:
        log.warning("database unavailable, worker waits before it reports ready",
                    extra={"error": str(state.outcome.exception())[:300]})

    from sqlalchemy.exc import DBAPIError

    for retry in Retrying(retry=retry_if_exception_type(DBAPIError), wait=wait_fixed(1),
                          before_sleep=note, reraise=True):
        with retry:
            attempt()
    dispose_engine()  # the pool's children open their own connections


def check_flower_auth(argv: list[str], env: dict[str, str]) -> None:
    """`celery -A workers flower` refuses to start without FLOWER_BASIC_AUTH (or another
    Flower auth option) unless CELGATE_LOCAL_DEMO says this is a local demo."""
    if "flower" not in argv[1:] or "--help" in argv:
        return
    if env.get("FLOWER_BASIC_AUTH") or env.get("FLOWER_AUTH") or any(
            a.startswith(("--basic-auth", "--basic_auth", "--auth")) for a in argv):
        return
    if env.get("CELGATE_LOCAL_DEMO", "").lower() in ("1", "true", "yes"):
        return
    raise SystemExit("Flower needs FLOWER_BASIC_AUTH=user:password (no default password); "
                     "set CELGATE_LOCAL_DEMO=1 only for a local demo")


check_flower_auth(sys.argv, dict(os.environ))
