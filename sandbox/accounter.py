"""An in-memory Shumway (Accounter) that behaves like the real one (docs/wire.md 2.4).

Balances follow Shumway's bookkeeping: every plan still on hold contributes its net change per
account, a net debit to the account's min available amount and a net credit to its max
available amount; a commit moves the plan's net change into the own amount, a rollback just
drops the contribution. Validation and error texts follow Shumway's validator: static checks
first, then the plan's state, then the batches against the ones held, then the accounts.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clients.accounter import accounter_thrift, base_thrift
from sandbox.control import (
    CallLog,
    control_routes,
    error,
    parse_control_body,
)
from sandbox.faults import Faults
from sandbox.woody_server import WOODY_FAULTS, WoodyApp, create_woody_app

HOLD, COMMIT, ROLLBACK = "HOLD", "COMMIT", "ROLLBACK"
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _same_posting(a: Any, b: Any) -> bool:
    # Descriptions are not compared: a repeat that only rewords them is the same posting.
    return (a.from_id, a.to_id, a.amount, a.currency_sym_code) == (
        b.from_id, b.to_id, b.amount, b.currency_sym_code)


def _net_changes(postings: Iterable[Any]) -> dict[int, int]:
    net: dict[int, int] = defaultdict(int)
    for posting in postings:
        net[posting.from_id] -= posting.amount
        net[posting.to_id] += posting.amount
    return dict(net)


def _invalid_request(message: str) -> Exception:
    return base_thrift.InvalidRequest(errors=[message])


def _invalid_postings(errors: dict[Any, list[str]]) -> Exception:
    return accounter_thrift.InvalidPostingParams(
        wrong_postings={posting: "; ".join(msgs) for posting, msgs in errors.items()})


@dataclass
class _Account:
    id: int
    currency: str
    description: str | None
    creation_time: str
    own: int = 0
    # Sums over plans on hold of min(net change, 0) and max(net change, 0).
    min_diff: int = 0
    max_diff: int = 0
    # (when, own amount from then on), for balance-at-time queries.
    history: list[tuple[datetime, int]] = field(default_factory=list)

    def to_thrift(self) -> Any:
        return accounter_thrift.Account(
            id=self.id, own_amount=self.own, max_available_amount=self.own + self.max_diff,
            min_available_amount=self.own + self.min_diff, currency_sym_code=self.currency,
            description=self.description, creation_time=self.creation_time,
        )

    def own_at(self, moment: datetime) -> int:
        own = 0
        for when, amount in self.history:
            if when > moment:
                break
            own = amount
        return own


@dataclass
class _Plan:
    id: str
    state: str = HOLD
    batches: dict[int, list[Any]] = field(default_factory=dict)

    def net_changes(self) -> dict[int, int]:
        return _net_changes(p for postings in self.batches.values() for p in postings)


class AccounterState:
    """Accounts and posting plans of the double; every operation takes one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[int, _Account] = {}
        self._plans: dict[str, _Plan] = {}

    def reset(self) -> None:
        with self._lock:
            self._accounts = {}
            self._plans = {}

    # --- Thrift methods (named as in the IDL, arguments by IDL name) ---

    def hold(self, plan_change: Any) -> Any:
        return self._apply(plan_change.id, [plan_change.batch], HOLD)

    def commit_plan(self, plan: Any) -> Any:
        return self._apply(plan.id, list(plan.batch_list), COMMIT)

    def rollback_plan(self, plan: Any) -> Any:
        return self._apply(plan.id, list(plan.batch_list), ROLLBACK)

    def get_plan(self, id: str) -> Any:  # noqa: A002 - the IDL's argument name
        with self._lock:
            plan = self._plans.get(id)
            if plan is None:
                raise accounter_thrift.PlanNotFound(plan_id=id)
            return accounter_thrift.PostingPlan(id=plan.id, batch_list=[
                accounter_thrift.PostingBatch(id=batch_id, postings=list(postings))
                for batch_id, postings in sorted(plan.batches.items())
            ])

    def get_account_by_id(self, id: int) -> Any:  # noqa: A002
        with self._lock:
            return self._account(id).to_thrift()

    def create_account(self, prototype: Any) -> int:
        return self.add_account(prototype.currency_sym_code, prototype.description,
                                creation_time=prototype.creation_time)

    def get_account_balance(self, id: int, to_time: str) -> int:  # noqa: A002
        moment = _parse_timestamp(to_time)
        with self._lock:
            return self._account(id).own_at(moment)

    def get_account_balance_diff(self, id: int, from_time: str, to_time: str) -> int:  # noqa: A002
        start, end = _parse_timestamp(from_time), _parse_timestamp(to_time)
        with self._lock:
            account = self._account(id)
            return account.own_at(end) - account.own_at(start)

    # --- control ---

    def add_account(self, currency: str, description: str | None = None, *,
                    account_id: int | None = None, creation_time: str | None = None) -> int:
        """Create an account (with a chosen id when given); ValueError if the id is taken."""
        with self._lock:
            if account_id is None:
                account_id = max(self._accounts, default=0) + 1
            elif account_id in self._accounts:
                raise ValueError(f"account {account_id} already exists")
            now = _now()
            self._accounts[account_id] = _Account(
                id=account_id, currency=currency, description=description,
                creation_time=creation_time or _timestamp(now), history=[(now, 0)],
            )
            return account_id

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "accounts": {str(a.id): _account_json(a.to_thrift())
                             for a in self._accounts.values()},
                "plans": {plan.id: {
                    "state": plan.state,
                    "batches": [{"id": batch_id, "postings": [_posting_json(p) for p in ps]}
                                for batch_id, ps in sorted(plan.batches.items())],
                } for plan in self._plans.values()},
            }

    # --- internals ---

    def _account(self, account_id: int) -> _Account:
        account = self._accounts.get(account_id)
        if account is None:
            raise accounter_thrift.AccountNotFound(account_id=account_id)
        return account

    def _apply(self, plan_id: str, batches: list[Any], operation: str) -> Any:
        _check_batches(plan_id, batches, final=operation != HOLD)
        _check_postings(batches)
        with self._lock:
            plan = self._plans.get(plan_id)
            _check_plan_state(plan_id, plan, operation)
            saved = plan.batches if plan is not None else {}
            wrong = _compare_with_saved(batches, saved, final=operation != HOLD)
            if wrong:
                raise _invalid_postings(wrong)
            new_batches = [b for b in batches if b.id not in saved]
            previous = plan.state if plan is not None else HOLD
            if not (previous == operation and not new_batches):  # else: a repeat, no change
                self._check_accounts(new_batches)
                plan = plan or self._plans.setdefault(plan_id, _Plan(plan_id))
                if operation == HOLD:
                    self._hold(plan, new_batches)
                else:
                    self._finish(plan, operation)
            touched = {account_id for b in batches for p in b.postings
                       for account_id in (p.from_id, p.to_id)}
            return accounter_thrift.PostingPlanLog(affected_accounts={
                account_id: self._accounts[account_id].to_thrift() for account_id in touched
                if account_id in self._accounts
            })

    def _check_accounts(self, batches: Sequence[Any]) -> None:
        errors: dict[Any, list[str]] = defaultdict(list)
        for batch in batches:
            for posting in batch.postings:
                for role, account_id in (("Source", posting.from_id), ("Target", posting.to_id)):
                    account = self._accounts.get(account_id)
                    if account is None:
                        errors[posting].append(
                            f"{role} account not found by id: {account_id} in batch: {batch.id}")
                    elif account.currency != posting.currency_sym_code:
                        errors[posting].append(
                            f"Account ({account_id}) currency code is not equal: expected: "
                            f"{account.currency}, actual: {posting.currency_sym_code} "
                            f"in batch: {batch.id}")
        if errors:
            raise _invalid_postings(errors)

    def _hold(self, plan: _Plan, new_batches: Sequence[Any]) -> None:
        before = plan.net_changes()
        for batch in new_batches:
            plan.batches[batch.id] = list(batch.postings)
        after = plan.net_changes()
        for account_id in before.keys() | after.keys():
            old, new = before.get(account_id, 0), after.get(account_id, 0)
            account = self._accounts[account_id]
            account.min_diff += min(new, 0) - min(old, 0)
            account.max_diff += max(new, 0) - max(old, 0)

    def _finish(self, plan: _Plan, operation: str) -> None:
        plan.state = operation
        now = _now()
        for account_id, net in plan.net_changes().items():
            account = self._accounts[account_id]
            account.min_diff -= min(net, 0)
            account.max_diff -= max(net, 0)
            if operation == COMMIT and net:
                account.own += net
                account.history.append((now, account.own))


def _check_batches(plan_id: str, batches: Sequence[Any], *, final: bool) -> None:
    if not batches:
        raise _invalid_request(f"Plan ({plan_id}) has no batches inside")
    if not final and len(batches) != 1:
        raise _invalid_request(f"Too many batches in posting plan ({plan_id})")
    seen: set[int] = set()
    for batch in batches:
        if not batch.postings:
            raise _invalid_request(f"Posting batch ({batch.id}) has no postings inside")
        if batch.id in seen:
            raise _invalid_request(f"Batch ({batch.id}) has duplicate in received list")
        seen.add(batch.id)
    if seen & {_I64_MIN, _I64_MAX}:
        raise _invalid_request(
            f"Batch in plan ({plan_id}) is not allowed to have long MAX or MIN value")


def _check_postings(batches: Sequence[Any]) -> None:
    errors: dict[Any, list[str]] = defaultdict(list)
    for batch in batches:
        for posting in batch.postings:
            if posting.from_id == posting.to_id:
                errors[posting].append("Source and target accounts cannot be the same")
            if posting.amount < 0:
                errors[posting].append("Amount cannot be negative")
    if errors:
        raise _invalid_postings(errors)


def _check_plan_state(plan_id: str, plan: _Plan | None, operation: str) -> None:
    if plan is None:
        if operation != HOLD:
            raise _invalid_request(f"Posting plan not found: {plan_id}")
        return
    if plan.state != HOLD and plan.state != operation:
        raise _invalid_request(
            f"Unable to change plan state: {plan_id} from: {plan.state} to {operation}")


def _compare_with_saved(batches: Sequence[Any], saved: dict[int, list[Any]], *,
                        final: bool) -> dict[Any, list[str]]:
    received = {batch.id: list(batch.postings) for batch in batches}
    errors: dict[Any, list[str]] = defaultdict(list)
    new_ids = [batch_id for batch_id in received if batch_id not in saved]
    if new_ids and saved and min(new_ids) < max(saved):
        lowest = min(new_ids)
        for posting in received[lowest]:
            errors[posting].append(f"Batch has id {lowest} lower than saved id: {max(saved)}")
    for batch_id in received.keys() & saved.keys():
        for posting in saved[batch_id]:
            if not any(_same_posting(posting, p) for p in received[batch_id]):
                errors[posting].append(f"Saved posting not found in batch: {batch_id}")
        for posting in received[batch_id]:
            if not any(_same_posting(posting, p) for p in saved[batch_id]):
                errors[posting].append(f"Received posting not found in batch: {batch_id}")
    if final:
        for batch_id in saved.keys() - received.keys():
            for posting in saved[batch_id]:
                errors[posting].append(f"Saved posting not found in batch: {batch_id}")
        for batch_id in received.keys() - saved.keys():
            for posting in received[batch_id]:
                errors[posting].append(f"Received posting not found in batch: {batch_id}")
    return errors


def _posting_json(posting: Any) -> dict[str, Any]:
    return {"from_id": posting.from_id, "to_id": posting.to_id, "amount": posting.amount,
            "currency": posting.currency_sym_code, "description": posting.description}


def _account_json(account: Any) -> dict[str, Any]:
    return {"id": account.id, "currency": account.currency_sym_code,
            "description": account.description, "creation_time": account.creation_time,
            "own_amount": account.own_amount,
            "min_available_amount": account.min_available_amount,
            "max_available_amount": account.max_available_amount}


class NewAccount(BaseModel):
    """Body of `POST /_sandbox/accounts`."""

    model_config = ConfigDict(extra="forbid")
    currency: StrictStr
    description: StrictStr | None = None
    id: StrictInt | None = None


def create_app(state: AccounterState | None = None, faults: Faults | None = None) -> WoodyApp:
    """The Accounter double: Thrift at "/", control under `/_sandbox/`."""
    state = state or AccounterState()
    faults = faults or Faults(WOODY_FAULTS)
    calls = CallLog()
    handlers = {
        "Hold": state.hold, "CommitPlan": state.commit_plan, "RollbackPlan": state.rollback_plan,
        "GetPlan": state.get_plan, "GetAccountByID": state.get_account_by_id,
        "CreateAccount": state.create_account, "GetAccountBalance": state.get_account_balance,
        "GetAccountBalanceDiff": state.get_account_balance_diff,
    }

    async def add_account(request: Request) -> JSONResponse:
        body = await parse_control_body(request, NewAccount)
        try:
            account_id = state.add_account(body.currency, body.description, account_id=body.id)
        except ValueError as exc:
            return error(409, "account_exists", str(exc))
        return JSONResponse({"id": account_id}, status_code=201)

    return create_woody_app(accounter_thrift.Accounter, handlers, faults, calls, control=[
        *control_routes(state, faults, calls),
        Route("/_sandbox/accounts", add_account, methods=["POST"]),
    ])
