"""The processor of the `payments` machine namespace: signals in, changes and timers out.

Signals carry typed commands, in-process (JSON stays at the edges: HTTP, Celery kwargs,
stored events):
- `Init(PaymentRequest)`: a register or hold; the payment's first changes.
- `Call(CaptureCommand | CancelCommand)`: decided against the current state under the lock;
  the response is the activity the payment moves to.
- `Timeout()`: the step of the current activity (`steps.STEPS`).
- `Repair(RepairCommand)`: an operator's repair of the failed machine (resume,
  fulfill_session, fail_session), recorded as events with who and why; then the current step
  runs at once.

A failed timeout step is retried on a timer when the failure is transient (a peer that could
not be reached or whose answer got lost, a provider session failed transiently) and marks the
machine failed otherwise: a business answer of a peer will not change by asking again, so an
operator looks at it and repairs the machine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from foundation.errors import is_transient
from payments import decisions
from payments.decisions import CancelCommand, CaptureCommand, RepairCommand
from payments.events import Change, InvalidHistory, to_json
from payments.folds import FoldCache
from payments.model import PaymentRequest
from payments.peers import get_peers
from payments.settings import get_settings
from payments.state import Activity, PaymentState, fold
from payments.steps import STEPS
from workers import machines
from workers.logs import bind
from workers.machines import Action, Call, Init, Machine, Namespace, Repair, Result, Signal

log = logging.getLogger(__name__)

NAME = "payments"

_folds = FoldCache()


def state_of(machine: Machine) -> PaymentState:
    """The fold of the machine's stored history (each event validated once per process)."""
    return _folds.state_of(machine)


def machine_id(invoice_id: str, payment_id: str) -> str:
    # Neither id may contain a dot (model.check_id), so the pair maps back unambiguously.
    return f"{invoice_id}.{payment_id}"


def process(signal: Signal | Repair, machine: Machine) -> Result:
    if isinstance(signal, Init):
        return _start(machine, signal.args)
    if isinstance(signal, Repair):
        return _repair(machine, signal.args)
    state = state_of(machine)
    payment = state.started
    with bind(invoice_id=payment.invoice_id, payment_id=payment.payment_id):
        if isinstance(signal, Call):
            changes = _decide(state, signal.args)
            after = fold(changes, state)
            # The caller learns where the payment went without reading it back.
            return _stepped(machine, changes, after, Action.instant(), response=after.activity)
        step = STEPS.get(state.activity)
        if step is None:
            raise InvalidHistory(f"a timer fired in activity {state.activity}")
        peers = get_peers()
        with bind(activity=state.activity, trace_id=peers.woody.trace_id):
            outcome = step(state, peers)
            log.info("payment step done",
                     extra={"changes": [change.TYPE for change in outcome.changes]})
        return _stepped(machine, outcome.changes, fold(outcome.changes, state), outcome.action)


def _stepped(machine: Machine, changes: Sequence[Change], after: PaymentState, action: Action,
             response: Any = None) -> Result:
    result = _result(changes, action, after.activity, response)
    _folds.appended(machine, result.events, after)
    return result


def _start(machine: Machine, request: PaymentRequest) -> Result:
    changes = decisions.start(request, machines.now(), get_settings().max_hold_lifetime_s)
    return _stepped(machine, changes, fold(changes), Action.instant())


def _repair(machine: Machine, command: RepairCommand) -> Result:
    if command.action == "resume":
        # A resume needs nothing of the state, so even a history this code cannot fold can
        # be resumed (once a fixed version reads it).
        changes: list[Change] = [decisions.resumed(command)]
    else:
        changes = decisions.repair(state_of(machine), command)
    # A resume runs whatever step the machine is in: the generic timer task carries it.
    return _result(changes, Action.instant(), None, response=command.action)


def _decide(state: PaymentState, command: CaptureCommand | CancelCommand) -> list[Change]:
    match command:
        case CaptureCommand():
            return decisions.capture(state, command)
        case CancelCommand(reason=reason):
            return decisions.cancel(state, reason)
    raise TypeError(f"not a payment call: {command!r}")


def _result(changes: Sequence[Change], action: Action, activity: Activity | None,
            response: Any = None) -> Result:
    """The changes as events; a timer runs the step of the activity they lead to, as the
    Celery task named after it."""
    return Result(events=[to_json(change) for change in changes], action=action,
                  response=response, step=activity if activity in STEPS else None)


NAMESPACE = Namespace(NAME, process, is_transient=is_transient, steps=tuple(STEPS))
