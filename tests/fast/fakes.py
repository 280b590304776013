"""In-memory peers with the semantics the steps and the charge job rely on.

Each fake keeps the state its real peer keeps (plans and batches, limit operations, provider
sessions, invoices and their operations), answers a repeated call with the same ids as the real
peer does (a duplicate changes nothing), and refuses what the real peer refuses. Faults are
asked for per method:

- `fail(method, error)`: the next call raises `error` before doing anything (the peer was not
  reached, or it refused: a business error);
- `lose_answer(method, error)`: the next call does its work, then raises `error` (the answer got
  lost on the way back: the caller cannot tell whether it happened).

Every call is logged in `calls` as `(method, key)` with the ids it carried, so a test can say
which ids a step sent and that a repeat sent the same ones.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from clients import accounter, limiter
from clients.accounter import Batch
from clients.limiter import Limit, LimitChange, PaymentContext
from clients.provider import ProviderRejected, SessionResult
from clients.transactions import Invoice, InvoiceNotFound, VersionConflict
from clients.woody_wire import WoodyContext


class Faults:
    def __init__(self) -> None:
        self._before: dict[str, deque[BaseException]] = defaultdict(deque)
        self._after: dict[str, deque[BaseException]] = defaultdict(deque)
        self.calls: list[tuple[str, Any]] = []

    def fail(self, method: str, error: BaseException, *, times: int = 1) -> None:
        self._before[method].extend([error] * times)

    def lose_answer(self, method: str, error: BaseException, *, times: int = 1) -> None:
        self._after[method].extend([error] * times)

    def _enter(self, method: str, key: Any) -> None:
        self.calls.append((method, key))
        if self._before[method]:
            raise self._before[method].popleft()

    def _leave(self, method: str) -> None:
        if self._after[method]:
            raise self._after[method].popleft()

    def called(self, method: str) -> list[Any]:
        return [key for name, key in self.calls if name == method]


# --- Accounter (Shumway) ----------------------------------------------------------------------


def _same_postings(a: Batch, b: Batch) -> bool:
    """Shumway compares postings on accounts, amount and currency; the description is ignored."""
    def key(batch: Batch) -> list[tuple[int, int, int, str]]:
        return [(p.from_id, p.to_id, p.amount, p.currency) for p in batch.postings]
    return key(a) == key(b)


@dataclass
class Plan:
    batches: dict[int, Batch] = field(default_factory=dict)
    state: str = "open"  # open | committed | rolled_back


class FakeAccounter(Faults):
    """Posting plans of batches; committing a plan moves the money between accounts once."""

    def __init__(self) -> None:
        super().__init__()
        self.plans: dict[str, Plan] = {}
        self.balances: dict[int, int] = defaultdict(int)  # own amounts after commits
        self.holds = 0  # batches actually added (a duplicate hold adds none)
        self.finals = 0  # plans actually committed or rolled back

    def with_context(self, context: WoodyContext) -> FakeAccounter:
        """As the real client's; a fake keeps no trace, so it is itself."""
        return self

    def hold(self, plan_id: str, batch: Batch) -> dict[int, accounter.Account]:
        self._enter("hold", (plan_id, batch.id))
        plan = self.plans.setdefault(plan_id, Plan())
        if plan.state != "open":
            raise accounter.InvalidRequest([f"Unable to change plan state: {plan_id}"])
        held = plan.batches.get(batch.id)
        if held is not None:
            if not _same_postings(held, batch):
                raise accounter.InvalidPostingParams({})
        elif plan.batches and batch.id < max(plan.batches):
            raise accounter.InvalidPostingParams({})
        else:
            plan.batches[batch.id] = batch
            self.holds += 1
        self._leave("hold")
        return {}

    def commit_plan(self, plan_id: str, batches: Sequence[Batch]) -> dict[int, accounter.Account]:
        return self._finish("commit_plan", "committed", plan_id, batches)

    def rollback_plan(self, plan_id: str, batches: Sequence[Batch]) -> dict[int, accounter.Account]:
        return self._finish("rollback_plan", "rolled_back", plan_id, batches)

    def _finish(self, method: str, final: str, plan_id: str,
                batches: Sequence[Batch]) -> dict[int, accounter.Account]:
        self._enter(method, (plan_id, tuple(b.id for b in batches)))
        plan = self.plans.get(plan_id)
        if plan is None:
            raise accounter.InvalidRequest([f"Posting plan not found: {plan_id}"])
        listed = {b.id: b for b in batches}
        if listed.keys() != plan.batches.keys() or not all(
                _same_postings(plan.batches[i], listed[i]) for i in listed):
            raise accounter.InvalidPostingParams({})
        if plan.state == "open":
            plan.state = final
            self.finals += 1
            if final == "committed":
                for batch in plan.batches.values():
                    for posting in batch.postings:
                        self.balances[posting.from_id] -= posting.amount
                        self.balances[posting.to_id] += posting.amount
        elif plan.state != final:
            raise accounter.InvalidRequest([f"Unable to change plan state: {plan_id}"])
        self._leave(method)
        return {}


# --- Limiter ----------------------------------------------------------------------------------


@dataclass
class Operation:
    limit_ids: tuple[str, ...]
    amount: int
    values_after_hold: dict[str, int]
    state: str = "held"  # held | committed | rolled_back
    contexts: list[PaymentContext] = field(default_factory=list)


class FakeLimiter(Faults):
    """Turnover limits: a hold adds the cost to each limit, a commit keeps the captured amount,
    a rollback releases it; every call is keyed by operation id."""

    def __init__(self, limits: Mapping[str, int] = ()) -> None:
        super().__init__()
        self.committed: dict[str, int] = dict(limits)
        self.operations: dict[str, Operation] = {}

    def with_context(self, context: WoodyContext) -> FakeLimiter:
        """As the real client's; a fake keeps no trace, so it is itself."""
        return self

    def value(self, limit_id: str) -> int:
        """Committed plus every amount still held on the limit."""
        held = sum(op.amount for op in self.operations.values()
                   if op.state == "held" and limit_id in op.limit_ids)
        return self.committed[limit_id] + held

    def hold_batch(self, operation_id: str, changes: Sequence[LimitChange],
                   context: PaymentContext) -> list[Limit]:
        if not changes:  # as the real client: no call for a route without limits
            return []
        self._enter("hold_batch", operation_id)
        ids = tuple(change.id for change in changes)
        if any(limit_id not in self.committed for limit_id in ids):
            raise limiter.LimitNotFound()
        operation = self.operations.get(operation_id)
        if operation is None:
            operation = Operation(ids, context.cost_amount, {})
            self.operations[operation_id] = operation
            operation.values_after_hold = {i: self.value(i) for i in ids}
        operation.contexts.append(context)
        self._leave("hold_batch")
        return [Limit(i, operation.values_after_hold[i]) for i in ids]

    def get_batch(self, operation_id: str, changes: Sequence[LimitChange],
                  context: PaymentContext) -> list[Limit]:
        if not changes:
            return []
        self._enter("get_batch", operation_id)
        operation = self._known(operation_id)
        self._leave("get_batch")
        return [Limit(i, v) for i, v in operation.values_after_hold.items()]

    def commit_batch(self, operation_id: str, changes: Sequence[LimitChange],
                     context: PaymentContext) -> None:
        if not changes:
            return
        self._enter("commit_batch", operation_id)
        operation = self._known(operation_id)
        operation.contexts.append(context)
        if operation.state == "held":
            operation.state = "committed"
            captured = (context.cost_amount if context.captured_amount is None
                        else context.captured_amount)
            for limit_id in operation.limit_ids:
                self.committed[limit_id] += captured
        elif operation.state != "committed":
            raise limiter.InvalidRequest(["OperationAlreadyInFinalState"])
        self._leave("commit_batch")

    def rollback_batch(self, operation_id: str, changes: Sequence[LimitChange],
                       context: PaymentContext) -> None:
        if not changes:
            return
        self._enter("rollback_batch", operation_id)
        operation = self._known(operation_id)
        operation.contexts.append(context)
        if operation.state == "held":
            operation.state = "rolled_back"
        elif operation.state != "rolled_back":
            raise limiter.InvalidRequest(["OperationAlreadyInFinalState"])
        self._leave("rollback_batch")

    def _known(self, operation_id: str) -> Operation:
        operation = self.operations.get(operation_id)
        if operation is None:  # as the liminator-backed Limiter answers it
            raise limiter.InvalidRequest(["OperationNotFound"])
        return operation


# --- provider adapter -------------------------------------------------------------------------


class FakeProvider(Faults):
    """Sessions keyed by session id. A session answers the scripted results in turn (default:
    it succeeds at once); once it has finished it gives the same final answer for ever."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: dict[str, deque[SessionResult]] = defaultdict(deque)
        self.finished: dict[str, SessionResult] = {}
        self.owners: dict[str, tuple[str, str]] = {}
        self.requests: list[dict[str, Any]] = []

    def script(self, session_id: str, *results: SessionResult) -> None:
        self.scripts[session_id].extend(results)

    def process_session(self, **request: Any) -> SessionResult:
        session_id = request["session_id"]
        self._enter("process_session", session_id)
        self.requests.append(request)
        owner = (request["invoice_id"], request["payment_id"])
        if self.owners.setdefault(session_id, owner) != owner:
            raise ProviderRejected(f"session {session_id} belongs to another payment",
                                   status=409)
        result = self.finished.get(session_id)
        if result is None:
            script = self.scripts[session_id]
            result = script.popleft() if script else SessionResult(
                "succeeded", trx_id=f"trx-{session_id}")
            if result.status == "succeeded" or (result.status == "failed"
                                                and not result.transient):
                self.finished[session_id] = result
        self._leave("process_session")
        return result


# --- transactions -----------------------------------------------------------------------------


class FakeTransactions(Faults):
    """Invoices whose cashback moves to the target an update asks for. An update is applied
    only against the invoice's current cashback version and while no other is in progress
    (else 409); an operation id it has seen already is answered 200 with nothing new."""

    def __init__(self) -> None:
        super().__init__()
        self.invoices: dict[str, dict[str, Any]] = {}
        self.updates: list[dict[str, Any]] = []  # every update request, duplicates included

    def add_invoice(self, invoice_id: str, *, user_ip: str | None = "::1",
                    status: str = "init", rewarded: Mapping[str, str] = (),
                    version: int = 1) -> None:
        self.invoices[invoice_id] = {
            "id": invoice_id, "currency": "RUB", "status": "cleared", "user_ip": user_ip,
            "cashback": {"status": status, "version": version,
                         "rewarded": [{"source": s, "amount": a}
                                      for s, a in dict(rewarded).items()],
                         "operations": []},
        }

    def cashback(self, invoice_id: str) -> dict[str, Any]:
        return self.invoices[invoice_id]["cashback"]

    def operation_ids(self, invoice_id: str) -> list[str]:
        return [op["operation_id"] for op in self.cashback(invoice_id)["operations"]]

    def retrieve_invoice(self, invoice_id: str) -> Invoice:
        self._enter("retrieve_invoice", invoice_id)
        if invoice_id not in self.invoices:
            raise InvoiceNotFound(f"retrieve {invoice_id}", status=404)
        invoice = Invoice.model_validate(self.invoices[invoice_id])
        self._leave("retrieve_invoice")
        return invoice

    def update_cashback(self, *, invoice_id: str, operation_id: str, version: int,
                        yandex_uid: str, user_ip: str, wallet_account: str,
                        reward: Mapping[str, Decimal], billing_service: str | None = None,
                        extra_payload: Mapping[str, Any] | None = None) -> None:
        self._enter("update_cashback", operation_id)
        self.updates.append({"invoice_id": invoice_id, "operation_id": operation_id,
                             "version": version, "wallet_account": wallet_account,
                             "reward": dict(reward), "billing_service": billing_service,
                             "extra_payload": extra_payload})
        if invoice_id not in self.invoices:
            raise InvoiceNotFound(f"update {invoice_id}", status=404)
        cashback = self.cashback(invoice_id)
        if operation_id not in self.operation_ids(invoice_id):
            if version != cashback["version"]:
                raise VersionConflict(f"update {invoice_id}: stale version {version}",
                                      status=409)
            if cashback["status"] == "in-progress":
                raise VersionConflict(f"update {invoice_id}: an operation is in progress",
                                      status=409)
            cashback["operations"].append({
                "operation_id": operation_id, "status": "processing",
                "created": datetime.now(UTC).isoformat(),
                "reward": [{"source": s, "amount": str(a)} for s, a in reward.items()]})
            cashback["status"] = "in-progress"
            cashback["version"] += 1
        self._leave("update_cashback")

    def finish(self, invoice_id: str, *, ok: bool = True,
               created: datetime | None = None) -> None:
        """transactions finishes the operation in progress: the cashback becomes its reward
        (success), or stays as it was (failed)."""
        cashback = self.cashback(invoice_id)
        operation = cashback["operations"][-1]
        operation["status"] = "done" if ok else "failed"
        if created is not None:
            operation["created"] = created.isoformat()
        cashback["status"] = "success" if ok else "failed"
        if ok:
            cashback["rewarded"] = list(operation["reward"])
