"""The Celery application: Redis broker, JSON only, late acks, one queue per domain.

Routing is by task-name prefix, so a service that enqueues `cashback.…` by name with
`send_task` lands on the cashback queue without knowing our routing table.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging, worker_process_init
from kombu import Exchange, Queue

from workers.db import dispose_engine
from workers.logs import configure_logging
from workers.settings import get_settings

QUEUES = ("payments", "cashback", "wallet", "workers")

# The composition root: business task modules the worker loads. The runtime's machinery
# (machines, timers, STQ) knows no business; this list only names the modules to import.
TASK_MODULES = ["workers.tasks", "payments.tasks", "cashback.tasks"]


def route_by_prefix(name: str, args, kwargs, options, task=None, **kw) -> dict | None:
    prefix = name.split(".", 1)[0]
    return {"queue": prefix} if prefix in QUEUES else None


def create_app() -> Celery:
    settings = get_settings()
    app = Celery("celgate", broker=settings.broker_url)
    app.conf.update(
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
        # Checks every message before Celery dispatches it: none can stop a worker.
        worker_consumer="workers.consumer:GuardedConsumer",
        enable_utc=True,
        timezone="UTC",
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
def _json_logs(**_: object) -> None:
    # Connecting this signal stops Celery from installing its own text handlers.
    configure_logging()


@worker_process_init.connect
def _fresh_pool_in_child(**_: object) -> None:
    # A pool inherited through fork shares sockets with the parent.
    dispose_engine()
