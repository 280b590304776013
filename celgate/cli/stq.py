"""`celgate stq list`: the STQ rows waiting (pending, retrying, overdue) and failed, most due first."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from celgate.cli.output import console, status, when


def add_commands(commands: Any) -> None:
    stq = commands.add_parser("stq", help="STQ rows").add_subparsers(dest="stq_command",
                                                                     required=True)
    p = stq.add_parser(
        "list", help="waiting rows (pending, retrying, overdue) and failed ones, most due first")
    p.add_argument("--queue")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=stq_list)


def stq_list(args: argparse.Namespace) -> None:
    from workers.db import transaction
    from workers.metrics import OVERDUE_AFTER
    from workers.operations import stq_rows

    with transaction() as tx:
        rows = stq_rows(tx, queue=args.queue, limit=args.limit)
    now = datetime.now(UTC)
    if args.json:
        print(json.dumps([{**vars(r), "state": r.state(now, OVERDUE_AFTER)} for r in rows],
                         default=str, indent=2))
        return
    table = Table(title=f"STQ rows waiting or failed ({len(rows)} shown, most due first)")
    for column in ("queue", "task id", "state", "due", "tries", "reschedules", "last error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        state = r.state(now, OVERDUE_AFTER)
        table.add_row(r.queue, r.task_id, status(state), when(r.eta), str(r.exec_tries),
                      str(r.reschedule_counter), (r.last_error or "")[:80])
    console.print(table)
