"""`celgate sweep`, `machines list`, `show` and `repair`: the runtime's machines, with what a
machine's namespace says of it (celgate/cli/payments.py for payments)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.table import Table

from celgate.cli import payments
from celgate.cli.output import change, console, status, when
from foundation.errors import TypedError


def add_commands(commands: Any) -> None:
    commands.add_parser("sweep", help="publish overdue timers and STQ tasks once").set_defaults(
        run=sweep)

    machines = commands.add_parser("machines", help="list machines").add_subparsers(
        dest="machines_command", required=True)
    p = machines.add_parser("list", help="machines, latest change first, e.g. every failed one")
    p.add_argument("--namespace")
    p.add_argument("--status", choices=["working", "failed"])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="raw rows as JSON")
    p.set_defaults(run=machines_list)

    p = commands.add_parser("show", help="a machine: status, activity, timer, error, events")
    p.add_argument("namespace")
    p.add_argument("machine_id", help="for payments: <invoice_id>.<payment_id>")
    p.add_argument("--events", type=int, default=50, help="show the last N events [50]")
    p.add_argument("--json", action="store_true", help="the machine and all events as JSON")
    p.set_defaults(run=show)

    p = commands.add_parser("repair", help="re-open a failed machine, then say how it went")
    p.add_argument("namespace")
    p.add_argument("machine_id", help="for payments: <invoice_id>.<payment_id>")
    p.add_argument("--action", default="resume",
                   choices=["resume", "fulfill-session", "fail-session", "fulfill_session",
                            "fail_session"])
    p.add_argument("--trx-id", help="fulfill-session: the provider's transaction id")
    p.add_argument("--failure-code", help="fail-session: the failure code")
    p.add_argument("--failure-reason", help="fail-session: the failure reason")
    p.add_argument("--operator", help="who repairs (recorded in the history)")
    p.add_argument("--reason", help="why (recorded in the history)")
    p.add_argument("--wait", type=float, default=3.0,
                   help="seconds to watch the machine after the repair [3]")
    p.set_defaults(run=repair)


def sweep(_: argparse.Namespace) -> None:
    from workers.tasks import sweep as run_sweep

    published = run_sweep()
    console.print(" ".join(f"{kind}: {count} published" for kind, count in published.items()))


def machines_list(args: argparse.Namespace) -> None:
    rows = _list_machines(args.namespace, args.status, args.limit)
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return
    table = Table(title=f"machines ({len(rows)} shown, latest change first)")
    for column in ("namespace", "id", "status", "error", "timer", "updated"):
        table.add_column(column, overflow="fold")
    for row in rows:
        error = row.get("error") or {}
        table.add_row(row["namespace"], row["id"], status(row["status"]),
                      f"{error.get('code', '')} {error.get('message', '')}".strip()[:80],
                      when(row.get("timer_due_at")), when(row.get("updated_at")))
    console.print(table)


def _list_machines(namespace: str | None, state: str | None, limit: int) -> list[dict]:
    from workers.db import transaction
    from workers.operations import machine_rows

    with transaction() as tx:
        return machine_rows(tx, namespace=namespace, status=state, limit=limit)


def show(args: argparse.Namespace) -> None:
    from workers import machines

    machine = machines.get(args.namespace, args.machine_id)
    if args.json:
        print(json.dumps(_raw(machine), default=str, indent=2))
        return
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("machine", f"{machine.namespace}/{machine.id}")
    summary.add_row("machine status", status(machine.status))
    for label, value in _business_state(machine).items():
        summary.add_row(label, value)
    summary.add_row("timer", when(machine.timer_due_at) or "none")
    if machine.error:
        summary.add_row("error", f"{machine.error.get('code')}: {machine.error.get('message')}"
                        f" (attempts: {machine.error.get('attempts', '?')})")
    console.print(summary)
    events = Table(title=f"events ({len(machine.history)})")
    events.add_column("id", justify="right")
    events.add_column("occurred at")
    events.add_column("change", overflow="fold")
    for event in machine.history[-args.events:]:
        events.add_row(str(event.id), when(event.occurred_at), change(event.body))
    console.print(events)


def _raw(machine: Any) -> dict[str, Any]:
    return {
        "namespace": machine.namespace, "id": machine.id, "status": machine.status,
        "error": machine.error, "timer_due_at": machine.timer_due_at,
        "events": [{"id": e.id, "occurred_at": e.occurred_at, "body": e.body}
                   for e in machine.history],
    }


def _business_state(machine: Any) -> dict[str, str]:
    """What the machine's namespace says of it (only payments say anything today)."""
    if machine.namespace == payments.namespace():
        return payments.state_of(machine)
    return {}


def repair(args: argparse.Namespace) -> None:
    from workers import app, machines

    app.loader.import_default_modules()  # the task modules define the namespaces
    before = machines.get(args.namespace, args.machine_id)
    _request_repair(args)
    console.print(f"repair recorded for {args.namespace}/{args.machine_id} "
                  f"(action {args.action}); watching it for {args.wait:g} s ...")
    # Say what happened, not what was asked: the step runs again and may fail again.
    deadline = time.monotonic() + args.wait
    after = machines.get(args.namespace, args.machine_id)
    while time.monotonic() < deadline and after.status != "failed" and (
            after.timer_due_at is not None or after.history == before.history):
        time.sleep(0.2)
        after = machines.get(args.namespace, args.machine_id)
    state = _business_state(after)
    where = ", ".join(f"{k} {v}" for k, v in state.items() if k in ("status", "activity"))
    new_events = len(after.history) - len(before.history)
    if after.status == "failed":
        console.print(f"[red]failed again[/red]: {after.error.get('code')}: "
                      f"{after.error.get('message')}" + (f" ({where})" if where else ""))
        raise SystemExit(1)
    progress = "still running" if after.timer_due_at is not None else "at rest"
    console.print(f"[green]working[/green], {progress}; {new_events} new event(s)"
                  + (f"; {where}" if where else ""))


def _request_repair(args: argparse.Namespace) -> None:
    from workers import machines

    action = args.action.replace("-", "_")
    if args.namespace == payments.namespace():
        payments.repair(args, action)
        return
    if action != "resume":
        raise TypedError(f"namespace {args.namespace} knows only --action resume",
                         code="unsupported_action")
    machines.repair(machines.registered(args.namespace), args.machine_id)
