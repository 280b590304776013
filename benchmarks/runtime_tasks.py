"""Tasks the benchmarks run in the worker: a K-step machine and the bare Celery chain that
every benchmark compares with.

The bare chain is the baseline: each step is one PostgreSQL transaction (lock and update a row)
and a `send_task` of the next step, the least a durable step could do.
"""

from __future__ import annotations

from sqlalchemy import text

from workers.celery_app import app
from workers.db import transaction
from workers.machines import Action, Init, Machine, Namespace, Result, Signal, register_timeout_task

BARE_TABLE = "bench_bare_chain"  # benchmark scratch table, in the benchmark database only


def steps(signal: Signal, machine: Machine) -> Result:
    if isinstance(signal, Init):
        return Result(events=[{"started": signal.args}], action=Action.instant(),
                      aux_state={"k": signal.args["k"]})
    done = len(machine.history)  # the start event plus one event a step
    last = done >= machine.aux_state["k"]
    return Result(events=[{"step": done}], action=Action.unset() if last else Action.instant())


NAMESPACE = Namespace("benchsteps", steps)
register_timeout_task(NAMESPACE)


@app.task(name="workers.bench_bare_step")
def bare_step(chain_id: str, k: int) -> None:
    with transaction() as tx:
        step = tx.conn.execute(
            text(f"UPDATE {BARE_TABLE} SET step = step + 1, updated_at = now() "
                 "WHERE id = :id RETURNING step"),
            {"id": chain_id},
        ).scalar_one()
    if step < k:
        app.send_task("workers.bench_bare_step", kwargs={"chain_id": chain_id, "k": k})
