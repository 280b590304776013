"""Client of Shumway's Accounter service (posting plans of batches, account balances).

Hellgate's way of using it (docs/wire.md 2.3): one `hold` per batch, then one `commit_plan` or
`rollback_plan` listing every batch held so far. Plan id + batch ids + posting contents make
every call repeatable, so all plan and read calls are retried on an unknown result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from clients.thrift_codec import load_idl
from clients.woody import (  # InvalidRequest: base.InvalidRequest, which both peers raise
    BusinessError,
    InvalidRequest,
    ServiceClient,
)

accounter_thrift = load_idl("accounter")
base_thrift = accounter_thrift.base


@dataclass(frozen=True)
class Posting:
    """Move `amount` minor units of `currency` from account `from_id` to `to_id`."""

    from_id: int
    to_id: int
    amount: int
    currency: str
    description: str


@dataclass(frozen=True)
class Batch:
    """The unit of atomicity inside a plan; its id is unique within the plan."""

    id: int
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "postings", tuple(self.postings))


@dataclass(frozen=True)
class Account:
    id: int
    own_amount: int
    max_available_amount: int
    min_available_amount: int
    currency: str
    description: str | None = None
    creation_time: str | None = None


class AccounterError(BusinessError):
    """A business answer of the Accounter; `code` is a stable machine-readable name."""

    code: ClassVar[str]


class InvalidPostingParams(AccounterError):
    code = "invalid_posting_params"

    def __init__(self, wrong_postings: Mapping[Posting, str], **kwargs: Any) -> None:
        self.wrong_postings = dict(wrong_postings)
        detail = "; ".join(f"{p}: {why}" for p, why in self.wrong_postings.items())
        super().__init__("InvalidPostingParams", detail=detail, **kwargs)


class PlanNotFound(AccounterError):
    code = "plan_not_found"

    def __init__(self, plan_id: str, **kwargs: Any) -> None:
        self.plan_id = plan_id
        super().__init__("PlanNotFound", detail=plan_id, **kwargs)


class AccountNotFound(AccounterError):
    code = "account_not_found"

    def __init__(self, account_id: int, **kwargs: Any) -> None:
        self.account_id = account_id
        super().__init__("AccountNotFound", detail=str(account_id), **kwargs)


def posting_to_thrift(posting: Posting) -> Any:
    return accounter_thrift.Posting(
        from_id=posting.from_id, to_id=posting.to_id, amount=posting.amount,
        currency_sym_code=posting.currency, description=posting.description,
    )


def posting_from_thrift(posting: Any) -> Posting:
    return Posting(from_id=posting.from_id, to_id=posting.to_id, amount=posting.amount,
                   currency=posting.currency_sym_code, description=posting.description or "")


def batch_to_thrift(batch: Batch) -> Any:
    return accounter_thrift.PostingBatch(
        id=batch.id, postings=[posting_to_thrift(p) for p in batch.postings])


def batch_from_thrift(batch: Any) -> Batch:
    return Batch(id=batch.id, postings=tuple(posting_from_thrift(p) for p in batch.postings))


def account_from_thrift(account: Any) -> Account:
    return Account(
        id=account.id, own_amount=account.own_amount,
        max_available_amount=account.max_available_amount,
        min_available_amount=account.min_available_amount,
        currency=account.currency_sym_code, description=account.description,
        creation_time=account.creation_time,
    )


def _typed(error: BusinessError) -> BusinessError:
    exc, trace = error.exception, {"exception": error.exception, "trace_id": error.trace_id}
    if isinstance(exc, accounter_thrift.InvalidPostingParams):
        wrong = {posting_from_thrift(p): why for p, why in (exc.wrong_postings or {}).items()}
        return InvalidPostingParams(wrong, **trace)
    if isinstance(exc, base_thrift.InvalidRequest):
        return InvalidRequest(exc.errors or [], **trace)
    if isinstance(exc, accounter_thrift.PlanNotFound):
        return PlanNotFound(exc.plan_id, **trace)
    if isinstance(exc, accounter_thrift.AccountNotFound):
        return AccountNotFound(exc.account_id, **trace)
    return error


class AccounterClient(ServiceClient):
    """Typed calls to the Accounter at `url` (e.g. `http://127.0.0.1:8022/accounter`)."""

    service = accounter_thrift.Accounter
    typed_error = staticmethod(_typed)

    def hold(self, plan_id: str, batch: Batch) -> dict[int, Account]:
        """Add one batch to the plan (creating the plan); the affected accounts after it."""
        change = accounter_thrift.PostingPlanChange(id=plan_id, batch=batch_to_thrift(batch))
        plan_log = self._call("Hold", {"plan_change": change}, idempotent=True)
        return _affected(plan_log)

    def commit_plan(self, plan_id: str, batches: Sequence[Batch]) -> dict[int, Account]:
        """Commit the plan; `batches` must be exactly the batches held."""
        plan_log = self._call("CommitPlan", {"plan": _plan(plan_id, batches)}, idempotent=True)
        return _affected(plan_log)

    def rollback_plan(self, plan_id: str, batches: Sequence[Batch]) -> dict[int, Account]:
        """Roll the plan back; `batches` must be exactly the batches held."""
        plan_log = self._call("RollbackPlan", {"plan": _plan(plan_id, batches)},
                              idempotent=True)
        return _affected(plan_log)

    def get_plan(self, plan_id: str) -> tuple[Batch, ...]:
        plan = self._call("GetPlan", {"id": plan_id}, idempotent=True)
        return tuple(batch_from_thrift(b) for b in plan.batch_list or ())

    def create_account(self, currency: str, description: str | None = None) -> int:
        """A new account's id. Not retried on an unknown result: a repeat makes a second one."""
        prototype = accounter_thrift.AccountPrototype(currency_sym_code=currency,
                                                      description=description)
        return self._call("CreateAccount", {"prototype": prototype}, idempotent=False)

    def get_account(self, account_id: int) -> Account:
        account = self._call("GetAccountByID", {"id": account_id}, idempotent=True)
        return account_from_thrift(account)


def _plan(plan_id: str, batches: Sequence[Batch]) -> Any:
    return accounter_thrift.PostingPlan(id=plan_id,
                                        batch_list=[batch_to_thrift(b) for b in batches])


def _affected(plan_log: Any) -> dict[int, Account]:
    return {account_id: account_from_thrift(account)
            for account_id, account in (plan_log.affected_accounts or {}).items()}
