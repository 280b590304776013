"""What the CLI says and does for a payment machine: its status, activity and amounts, and a
repair recorded with who and why (which also settles a provider session)."""

from __future__ import annotations

import argparse
from typing import Any

from celgate.cli.output import money
from foundation.errors import TypedError


def namespace() -> str:
    from payments.processor import NAME

    return NAME


def state_of(machine: Any) -> dict[str, str]:
    if not machine.history:
        return {}
    from payments.views import payment_view

    view = payment_view(machine)
    state = {"payment": f"{view.invoice_id}/{view.payment_id}", "status": view.status,
             "activity": view.activity, "cost": money(view.cost)}
    if view.captured_cost:
        state["captured"] = money(view.captured_cost)
    if view.failure:
        state["failure"] = f"{view.failure.get('code')}: {view.failure.get('reason')}"
    return state


def repair(args: argparse.Namespace, action: str) -> None:
    from payments.repairs import repair_machine

    if action == "fail_session" and not args.failure_code:
        raise TypedError("fail-session needs --failure-code (and --failure-reason)",
                         code="invalid_repair")
    repair_machine(args.machine_id, action=action, trx_id=args.trx_id,
                   failure_code=args.failure_code, failure_reason=args.failure_reason or "",
                   operator=args.operator, reason=args.reason)
