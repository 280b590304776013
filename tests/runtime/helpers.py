"""Looking at machines and the broker from a test."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select, update

from tests.support import toys
from tests.support.broker import TestBroker
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


def messages_with(broker: TestBroker, text: str) -> list[str]:
    """Broker messages whose body mentions `text` (a machine id, a marker)."""
    return broker.messages_with(text)


def rejections(log: Path, code: str, marker: str) -> list[str]:
    """The worker log's "task rejected" lines naming `code` and `marker`."""
    return [line for line in log.read_text(errors="replace").splitlines()
            if '"task rejected"' in line and code in line and marker in line]
