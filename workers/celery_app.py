"""The Celery application: Redis broker, JSON only, late acks, one queue per domain.

Routing is by task-name prefix, so a service that enqueues `cashback.…` by name with
`send_task` lands on the cashback queue without knowing our routing table.
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
from kombu import Exchange, Queue
from sqlalchemy import text
from tenacity import Retrying, retry_if_exception_type, wait_fixed

from workers import logs
from workers.db import dispose_engine, get_engine
from workers.settings import get_settings

log = logging.getLogger(__name__)

QUEUES = ("payments", "cashback", "wallet", "workers")

# The composition root: business task modules the worker loads. The runtime's machinery
# (machines, timers, STQ) knows no business; this list only names the modules to import.
TASK_MODULES = ["workers.tasks", "payments.tasks", "cashback.tasks"]


def route_by_prefix(name: str, args, kwargs, options, task=None, **kw) -> dict | None:
    prefix = name.split(".", 1)[0]
    return {"queue": prefix} if prefix in QUEUES else None


def broker_transport(broker_url: str) -> str | None:
    """Our Redis transport for `redis://` brokers (see `workers.redis_transport`)."""
    return "workers.redis_transport:Transport" if broker_url.startswith("redis://") else None


def create_app() -> Celery:
    settings = get_settings()
    app = Celery("celgate", broker=settings.broker_url)
    app.conf.update(
        broker_transport=broker_transport(settings.broker_url),
        include=TASK_MODULES + settings.extra_import_modules,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=settings.worker_prefetch_multiplier,
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        task_default_queue="workers",
        task_routes=(route_by_prefix,),
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout_s},
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
    # A pool inherited through fork shares sockets with the parent.
    dispose_engine()


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
