"""Looking at machines and the broker from a test."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import redis
from sqlalchemy import select, update

from tests.support import toys
from workers import machines
from workers.db import transaction
from workers.tables import machines as machines_table


def new_counter(**args) -> str:
    machine_id = f"m-{uuid.uuid4().hex[:12]}"
    machines.start(toys.NAMESPACE, machine_id, {"target": 3, **args})
    return machine_id


def row(machine_id: str):
    with transaction() as tx:
        return tx.conn.execute(
            select(machines_table).where(
                machines_table.c.namespace == toys.NAME, machines_table.c.id == machine_id
            )
        ).first()


def steps(machine_id: str) -> list[int]:
    machine = machines.get(toys.NAME, machine_id)
    return [e.body["step"] for e in machine.history if "step" in e.body]


def event_ids(machine_id: str) -> list[int]:
    return [e.id for e in machines.get(toys.NAME, machine_id).history]


def finished(machine_id: str, target: int = 3) -> bool:
    return len(steps(machine_id)) >= target and row(machine_id).timer_due_at is None


def set_timer_due_now(machine_id: str) -> None:
    """Stand-in for time passing: the timer's due time arrives."""
    with transaction() as tx:
        tx.conn.execute(
            update(machines_table)
            .where(machines_table.c.namespace == toys.NAME, machines_table.c.id == machine_id)
            .values(timer_due_at=machines.now(), timer_publish_at=machines.now())
        )


def broker_messages(client: redis.Redis) -> list[dict]:
    """Every message sitting in the broker: queued lists and unacked (including ETA) ones."""
    found = []
    for key in client.keys("*"):
        kind = client.type(key)
        if kind == b"list":
            found += [json.loads(m) for m in client.lrange(key, 0, -1)]
        elif kind == b"hash" and key == b"unacked":
            found += [json.loads(v)[0] for v in client.hvals(key)]
    return found


def messages_with(client: redis.Redis, text: str) -> list[dict]:
    """Broker messages whose body mentions `text` (a machine id, a marker)."""
    return [m for m in broker_messages(client) if text in _decode_body(m)]


def _decode_body(message: dict) -> str:
    return base64.b64decode(message["body"]).decode(errors="replace")


def rejections(log: Path, code: str, marker: str) -> list[str]:
    """The worker log's "task rejected" lines naming `code` and `marker`."""
    return [line for line in log.read_text(errors="replace").splitlines()
            if '"task rejected"' in line and code in line and marker in line]
