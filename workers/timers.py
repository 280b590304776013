"""How a due time becomes a Celery message (ARCHITECTURE.md section 5).

A due time within the short-timer threshold is published now with a countdown; a later one
stays only in PostgreSQL until the sweeper finds it near. Long ETA messages would sit in worker
memory and be redelivered by the broker's visibility timeout, so they are never sent.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func

from workers.celery_app import app
from workers.settings import get_settings

log = logging.getLogger(__name__)


def threshold_s() -> float:
    return get_settings().short_timer_threshold_s


def allowance_s() -> float:
    return get_settings().redelivery_allowance_s


def machine_retry_limit() -> int:
    return get_settings().machine_retry_limit


def is_near(due: datetime) -> bool:
    return due <= datetime.now(UTC) + timedelta(seconds=threshold_s())


def sweepable(due: ColumnElement, sent_at: ColumnElement, current: datetime) -> ColumnElement:
    """The sweeper's rule for a row with a due time and a sent mark: due now or within the
    threshold, and never sent, or sent longer ago than the redelivery allowance."""
    horizon = current + timedelta(seconds=threshold_s())
    lost_before = current - timedelta(seconds=allowance_s())
    return and_(due <= horizon, sent_at.is_(None) | (func.greatest(due, sent_at) <= lost_before))


def delay_until(due: datetime) -> float:
    return max(0.0, (due - datetime.now(UTC)).total_seconds())


def busy_delay() -> float:
    return get_settings().busy_retry_s


def backoff(attempt: int, *, initial_s: float | None = None, max_s: float | None = None) -> float:
    """Capped exponential backoff for the n-th failed attempt (1-based), with 10 % jitter."""
    settings = get_settings()
    initial = settings.machine_retry_initial_s if initial_s is None else initial_s
    cap = settings.machine_retry_max_s if max_s is None else max_s
    base = min(cap, initial * 2 ** (attempt - 1))
    return base * random.uniform(0.9, 1.1)


def publish(task_name: str, kwargs: dict[str, Any], countdown: float) -> None:
    app.send_task(task_name, kwargs=kwargs, countdown=countdown or None)


def publish_if_near(task_name: str, kwargs: dict[str, Any], due: datetime) -> None:
    if is_near(due):
        publish(task_name, kwargs, delay_until(due))
