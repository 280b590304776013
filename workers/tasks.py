"""Runtime tasks: the sweeper that brings back timers and STQ tasks whose message was lost."""

from __future__ import annotations

from workers import machines, metrics, stq
from workers.celery_app import app
from workers.messages import TypedTask
from workers.settings import get_settings


def sweep() -> dict[str, int]:
    """Publish due timers and STQ rows without a live message, in bounded batches.

    Safe on several beats at once: candidates are claimed with FOR UPDATE SKIP LOCKED and
    stamped sent in the same statement.
    """
    batch = get_settings().sweep_batch
    published = {"machines": machines.sweep_due(batch), "stq": stq.sweep_due(batch)}
    for kind, count in published.items():
        metrics.sweeper_published(kind, count)
    return published


@app.task(name="workers.sweep", base=TypedTask)
def sweep_task() -> dict[str, int]:
    return sweep()
