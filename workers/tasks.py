"""Runtime tasks: the sweeper that brings back timers and STQ tasks whose message was lost."""

from __future__ import annotations

import time

from workers import machines, metrics, stq
from workers.celery_app import app
from workers.messages import TypedTask
from workers.settings import get_settings

# A pass drains batch after batch for at most this share of the beat interval, so a burst of
# timers due together goes out at once while passes of several beats never pile up.
_PASS_BUDGET_SHARE = 0.8


def sweep() -> dict[str, int]:
    """Publish due timers and STQ rows without a live message, batch after batch until none
    is left or the pass's time budget is spent.

    Safe on several beats at once: candidates are claimed with FOR UPDATE SKIP LOCKED and
    stamped sent in the same statement.
    """
    settings = get_settings()
    batch = settings.sweep_batch
    deadline = time.monotonic() + settings.sweep_interval_s * _PASS_BUDGET_SHARE
    totals = {"machines": 0, "stq": 0}
    pending = dict.fromkeys(totals, True)
    sweeps = {"machines": machines.sweep_due, "stq": stq.sweep_due}
    while any(pending.values()):
        for kind, sweep_kind in sweeps.items():
            if pending[kind]:
                count = sweep_kind(batch)
                totals[kind] += count
                pending[kind] = count == batch
        if time.monotonic() >= deadline:
            break
    for kind, count in totals.items():
        metrics.sweeper_published(kind, count)
    return totals


@app.task(name="workers.sweep", base=TypedTask)
def sweep_task() -> dict[str, int]:
    return sweep()
