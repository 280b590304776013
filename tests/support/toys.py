"""Toys that exercise the runtime without business: a counting machine and an STQ queue.

The machine counts to `target`, one step a timer.

Args steer it for fault tests: `sleep_s` makes each step slow (for kills mid-step),
`fail_times` makes each step raise N times (for the retry path), `fail_while_key` makes steps
raise while that Redis key exists (a peer outage), `delay_s` spaces the steps.
"""

from __future__ import annotations

import os
import time

import redis
from pydantic import BaseModel

from workers import stq
from workers.celery_app import app
from workers.db import Tx
from workers.machines import (
    Action,
    Call,
    Init,
    Machine,
    Namespace,
    Result,
    Signal,
    register_timeout_task,
)
from workers.settings import get_settings

NAME = "counter"


def process(signal: Signal, machine: Machine) -> Result:
    if isinstance(signal, Init):
        return Result(events=[{"started": signal.args}], action=Action.instant(),
                      aux_state={"args": signal.args})
    args = machine.aux_state["args"]
    if isinstance(signal, Call):
        return Result(events=[{"called": signal.args}], response=len(machine.history))
    count = sum(1 for e in machine.history if "step" in e.body)
    if count >= args["target"]:
        return Result(action=Action.unset())
    if args.get("sleep_s"):
        marker = args.get("marker_dir")
        if marker:
            open(os.path.join(marker, f"{machine.id}.{count + 1}.{os.getpid()}"), "w").close()
        time.sleep(args["sleep_s"])
    if args.get("fail_times", 0) > _failed_attempts(machine):
        raise RuntimeError("configured failure")
    if args.get("fail_while_key") and _redis().exists(args["fail_while_key"]):
        raise RuntimeError("peer is down")
    done = count + 1 >= args["target"]
    action = Action.unset() if done else (
        Action.timeout(args["delay_s"]) if args.get("delay_s") else Action.instant())
    return Result(events=[{"step": count + 1}], action=action)


def _failed_attempts(machine: Machine) -> int:
    return machine.error["attempts"] if machine.error else 0


NAMESPACE = Namespace(NAME, process)
machine_timeout = register_timeout_task(NAMESPACE)


# --- a toy STQ queue: reschedules itself `reschedules` times, then finishes ----------------

STQ_QUEUE = "workers.toy_stq"


class ToyKwargs(BaseModel):
    name: str
    reschedules: int = 0
    delay_s: float = 0


def _runs_key(name: str) -> str:
    return f"toy-stq-runs:{name}"


def runs(name: str) -> list[str]:
    """What the toy job recorded, one entry a run (an external effect we can count)."""
    return [r.decode() for r in _redis().lrange(_runs_key(name), 0, -1)]


def _redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url)


def toy_job(tx: Tx, task: stq.Task, args: ToyKwargs) -> stq.JobResult:
    _redis().rpush(_runs_key(args.name), f"{task.reschedule_counter}:{task.exec_tries}")
    if task.reschedule_counter < args.reschedules:
        return stq.Reschedule(args.delay_s)
    return stq.Finish()


toy_stq_task = stq.register_task(STQ_QUEUE, ToyKwargs, lambda a: a.name, toy_job)


# --- a plain task that records when each message ran (publishing tests) -----------------

RECORD_TASK = "workers.toy_record"


def _record_key(marker: str) -> str:
    return f"toy-record:{marker}"


def recorded(marker: str) -> list[tuple[int, float]]:
    """(index, time it ran) of every run of the `marker` messages, in run order."""
    entries = _redis().lrange(_record_key(marker), 0, -1)
    return [(int(index), float(at)) for index, at in (e.decode().split(":") for e in entries)]


@app.task(name=RECORD_TASK)
def toy_record(marker: str, index: int) -> None:
    _redis().rpush(_record_key(marker), f"{index}:{time.time()}")
