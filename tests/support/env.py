"""The environment every test process and the worker processes it starts share.

Set before `workers` is imported (settings are read once). Each pytest run claims a free *slot*
(a file lock held for the run's lifetime) that gives it its own database, Redis databases,
RabbitMQ virtual host and sandbox ports, so two runs on one machine, or a running demo, never
disturb each other.

The broker is Redis unless CELGATE_TEST_BROKER=rabbitmq (`make test-rabbitmq`).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from sandbox.peers import peer_env

SLOTS = 6  # Redis has 16 databases; a slot takes two of them, from db 4 up
_held_lock = None


def _claim_slot() -> int:
    global _held_lock
    if "CELGATE_TEST_SLOT" in os.environ:
        return int(os.environ["CELGATE_TEST_SLOT"])
    for slot in range(SLOTS):
        handle = open(Path(tempfile.gettempdir()) / f"celgate-test-slot-{slot}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held_lock = handle
        return slot
    raise RuntimeError(f"all {SLOTS} test slots are taken by other test runs")


def sandbox_port_offset(slot: int) -> int:
    return 10000 + 100 * slot


BROKERS = ("redis", "rabbitmq")


def broker_choice() -> str:
    choice = os.environ.get("CELGATE_TEST_BROKER", "redis")
    if choice not in BROKERS:
        raise RuntimeError(f"CELGATE_TEST_BROKER must be one of {BROKERS}, not {choice!r}")
    return choice


def rabbitmq_vhost(slot: int) -> str:
    return f"celgate_test_{slot}"


def broker_url(slot: int) -> str:
    if broker_choice() == "rabbitmq":
        return f"amqp://guest:guest@127.0.0.1:5672/{rabbitmq_vhost(slot)}"
    return f"redis://127.0.0.1:6379/{4 + 2 * slot}"


def test_env(slot: int) -> dict[str, str]:
    return {
        "CELGATE_TEST_SLOT": str(slot),
        "DATABASE_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/celgate_test_{slot}",
        "CELGATE_TEST_BROKER": broker_choice(),
        "BROKER_URL": broker_url(slot),
        "REDIS_URL": f"redis://127.0.0.1:6379/{5 + 2 * slot}",
        **peer_env(sandbox_port_offset(slot)),
        "PEER_TIMEOUT_S": "2",
        "API_TOKEN": "test-token",
        "BILLING_CALLBACK_SECRET": "test-secret",
        "SHORT_TIMER_THRESHOLD_S": "30",
        "REDELIVERY_ALLOWANCE_S": "3",
        "MACHINE_RETRY_INITIAL_S": "0.2",
        "MACHINE_RETRY_MAX_S": "1",
        "MACHINE_RETRY_LIMIT": "4",
        "STQ_RETRY_INITIAL_S": "0.2",
        "STQ_RETRY_MAX_S": "1",
        "CASHBACK_RETRY_MIN_DELAY_S": "0.2",
        "CASHBACK_RETRY_MAX_DELAY_S": "1",
        "CASHBACK_POLL_INITIAL_S": "0.1",
        "CASHBACK_POLL_MAX_S": "0.5",
        "CASHBACK_MISSING_INVOICE_LIMIT": "3",
        "CASHBACK_BILLING_SERVICES": "taxi=card",
        "WORKER_EXTRA_IMPORTS": "tests.support.toys",
        "LOG_LEVEL": "INFO",
    }


def apply() -> int:
    slot = _claim_slot()
    os.environ.update(test_env(slot))
    return slot
