"""The timer protocol (docs/design.md section 3): how a due time becomes a Celery message.

Machines and STQ rows both carry a due time, a token, a sent mark and `publish_at`: the next
moment the sweeper should publish the row. Arming a timer (`arm`) gives it a new token; a due
time within the short-timer threshold is published at once with a countdown (and re-sent by
the sweeper from `due + allowance` on if its message was lost), a later one stays only in
PostgreSQL until the sweeper publishes it a threshold before it is due (claiming it up to two
sweep intervals earlier still, with a countdown to its due time). Long ETA messages
would sit in worker memory and be redelivered by the broker's visibility timeout, so they are
never sent.

Each re-send by the sweeper doubles the wait before the next one (capped), so a backlog
longer than the allowance is re-sent a few times, not on every pass.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kombu.exceptions import OperationalError as BrokerUnavailable

from foundation.errors import is_transient
from foundation.retry import RetryPolicy
from workers import publish as publisher
from workers.db import transaction
from workers.settings import get_settings

log = logging.getLogger(__name__)

# A stored time PostgreSQL keeps but Python cannot read back (year 0 or 10000 in UTC) would
# break every read of its row: due times are kept inside the years Python can hold.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)
# The longest wait between two re-sends of the same row, in redelivery allowances.
_MAX_RESEND_ALLOWANCES = 32
# Retries of many rows that failed together spread over +-10 % of their pause.
RETRY_JITTER = 0.1


def threshold_s() -> float:
    return get_settings().short_timer_threshold_s


def allowance_s() -> float:
    return get_settings().redelivery_allowance_s


def look_ahead_s() -> float:
    """How far ahead of its publish time the sweeper claims a timer never sent: two beat
    intervals, so a timer is claimed on a pass at least one interval before it is due and its
    message is in the broker in time even when that pass spends its whole budget on a burst."""
    return 2 * get_settings().sweep_interval_s


def now() -> datetime:
    return datetime.now(UTC)


def in_range(due: datetime) -> datetime:
    """`due` in UTC, held inside the years that read back (an offset may push it out)."""
    try:
        utc = due.astimezone(UTC)
    except OverflowError:
        return _EARLIEST if due.year < 5000 else _LATEST
    return min(max(utc, _EARLIEST), _LATEST)


def is_near(due: datetime) -> bool:
    return due <= now() + timedelta(seconds=threshold_s())


@dataclass(frozen=True)
class Armed:
    """A timer as written to its row: publish it now (`near`) or leave it to the sweeper."""

    due: datetime
    token: str
    sent_at: datetime | None
    publish_at: datetime

    @property
    def near(self) -> bool:
        return self.sent_at is not None


def arm(due: datetime, current: datetime) -> Armed:
    due = in_range(due)
    threshold = timedelta(seconds=threshold_s())
    if due <= current + threshold:
        # Stamped sent before the publish happens: if we die in between, the sweeper
        # publishes again once the allowance has passed.
        return Armed(due, uuid.uuid4().hex, current,
                     max(due, current) + timedelta(seconds=allowance_s()))
    return Armed(due, uuid.uuid4().hex, None, due - threshold)


def delay_until(due: datetime) -> float:
    return max(0.0, (due - now()).total_seconds())


def busy_delay() -> float:
    return get_settings().busy_retry_s


def machine_retry_policy(is_transient: Callable[[BaseException], bool]) -> RetryPolicy:
    """A machine step that failed transiently runs again on a timer, MACHINE_RETRY_LIMIT
    attempts in all; then, or at once for a failure that is not transient, the machine fails."""
    settings = get_settings()
    return RetryPolicy(limit=settings.machine_retry_limit,
                       initial_s=settings.machine_retry_initial_s,
                       max_s=settings.machine_retry_max_s, jitter=RETRY_JITTER,
                       retryable=is_transient)


def stq_retry_policy() -> RetryPolicy:
    """An STQ job that raised runs again, STQ_RETRY_LIMIT attempts in all; then its row is
    marked failed. A transient failure (a peer that is down) is waited out however long it
    lasts: failing the row would leave its work with nobody to resume it."""
    settings = get_settings()
    return RetryPolicy(limit=settings.stq_retry_limit, initial_s=settings.stq_retry_initial_s,
                       max_s=settings.stq_retry_max_s, jitter=RETRY_JITTER,
                       outlasts_limit=is_transient)


def publish(task_name: str, kwargs: dict[str, Any], countdown: float) -> None:
    # The one way to publish (pooled producer; RabbitMQ's topology declared before a countdown).
    publisher.publish(task_name, kwargs, countdown)


def publish_if_near(task_name: str, kwargs: dict[str, Any], due: datetime) -> None:
    if is_near(due):
        publish(task_name, kwargs, delay_until(due))


# --- the sweep ----------------------------------------------------------------------------


def claim_sql(table: str, key: tuple[str, ...], *, due: str, sent_at: str, publish_at: str,
              returning: str) -> str:
    """The sweep statement of one row kind: claim rows whose `publish_at` has come (skipping
    rows a worker holds), stamp them sent and push `publish_at` out by a doubling wait.

    A row never sent (a far timer) is also claimed when its publish time is at most
    `%(ahead)s` away (`look_ahead_s`): its message waits in the broker until the due time,
    instead of going out up to a beat interval late. Every message is delivered at
    `deliver_epoch` (the due time, or now when that has passed; epoch seconds always read
    back, whatever is stored), and the row's next re-send counts from there, so a message
    sent ahead is not re-sent before it had the whole allowance. Re-sends are never claimed
    ahead: they keep the doubling wait between two sends.
    """
    keys = ", ".join(key)
    deliver = f"GREATEST(t.{due}, %(now)s)"
    return f"""
        WITH due AS (
            SELECT {keys} FROM {table}
            WHERE {publish_at} <= %(now)s + make_interval(secs => %(ahead)s)
              AND ({publish_at} <= %(now)s OR {sent_at} IS NULL)
            ORDER BY {publish_at}
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE {table} AS t SET
            {sent_at} = %(now)s,
            {publish_at} = {deliver} + make_interval(secs => LEAST(%(max_wait)s, GREATEST(
                %(allowance)s,
                2 * EXTRACT(EPOCH FROM %(now)s - COALESCE(t.{sent_at}, %(now)s))::float8)))
        FROM due WHERE {" AND ".join(f"t.{k} = due.{k}" for k in key)}
        RETURNING {returning}, EXTRACT(EPOCH FROM {deliver})::float8 AS deliver_epoch
    """


def sweep_batch(sql: str, limit: int, message_of) -> int:
    """Claim one batch with `sql` and publish its messages after commit, in one round trip
    where the broker allows (`message_of(row, countdown)` gives each row's message); how many
    rows were claimed.

    A row that cannot be published (bad data) is logged and skipped: it never stops the
    others. A broker that is down stops the batch: the rows stay claimed and come back after
    their re-send wait.
    """
    current = now()
    settings = get_settings()
    params = {"now": current, "limit": limit, "allowance": settings.redelivery_allowance_s,
              "max_wait": settings.redelivery_allowance_s * _MAX_RESEND_ALLOWANCES,
              "ahead": look_ahead_s()}
    with transaction() as tx:
        rows = tx.conn.exec_driver_sql(sql, params).all()
    if not rows:
        return 0
    moment = time.time()
    messages = [message_of(row, max(0.0, row.deliver_epoch - moment)) for row in rows]
    try:
        publisher.publish_many(messages)
    except BrokerUnavailable:
        log.warning("broker unavailable; the sweep stops until the next pass",
                    extra={"code": "publish_failed"})
    except Exception:  # one bad message: publish them one by one to skip only it
        _publish_each(messages)
    return len(rows)


def _publish_each(messages: list) -> None:
    for task_name, kwargs, countdown in messages:
        try:
            publish(task_name, kwargs, countdown)
        except BrokerUnavailable:
            log.warning("broker unavailable; the sweep stops until the next pass",
                        extra={"code": "publish_failed"})
            return
        except Exception:
            log.exception("a swept row could not be published; skipped",
                          extra={"code": "sweep_row_failed", "task": task_name})
