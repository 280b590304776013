"""Runtime tasks: the sweeper that brings back timers and STQ tasks whose message was lost."""

from __future__ import annotations

from workers import machines, stq
from workers.celery_app import app
from workers.messages import TypedTask
from workers.settings import get_settings


def sweep() -> dict[str, int]:
    """Publish due timers and STQ rows without a live message, in bounded batches.

    Safe on several beats at once: candidates are claimed with FOR UPDATE SKIP LOCKED and
    stamped sent in the same statement.
    """
    batch = get_settings().sweep_batch
    return {"machines": machines.sweep_due(batch), "stq": stq.sweep_due(batch)}


@app.task(name="workers.sweep", base=TypedTask)
def sweep_task() -> dict[str, int]:
    return sweep()
