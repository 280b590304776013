"""Client of the provider adapter: drive a capture or cancel session to its end.

The adapter is idempotent by `session_id`, so a call is repeated safely: it answers
"processing" (ask again in `poll_in_s`), "succeeded" or "failed" with a transient flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from clients.json_http import JsonHttp, PeerBadAnswer, PeerError, PeerRejected, PeerUnavailable

SessionTarget = Literal["captured", "cancelled"]


class ProviderError(PeerError):
    code = "provider_error"


class ProviderRejected(ProviderError, PeerRejected):
    """The adapter refused the request itself (4xx, e.g. the session id is already used for
    another payment): repeating it will not help."""

    code = "provider_rejected"


class ProviderUnavailable(ProviderError, PeerUnavailable):
    """Unreachable, failing (5xx) or rate limiting (429): ask again later."""

    code = "provider_unavailable"


@dataclass(frozen=True)
class SessionResult:
    status: Literal["processing", "succeeded", "failed"]
    poll_in_s: int | None = None
    trx_id: str | None = None
    failure_code: str | None = None
    transient: bool = False


class _Failure(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str
    transient: bool


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["processing", "succeeded", "failed"]
    poll_in_s: int | None = None
    trx_id: str | None = None
    failure: _Failure | None = None


class ProviderClient:
    def __init__(self, base_url: str, *, timeout_s: float = 5.0, attempts: int = 3,
                 backoff_s: float = 0.05) -> None:
        self._http = JsonHttp(base_url, timeout_s=timeout_s, attempts=attempts,
                              backoff_s=backoff_s, unavailable=ProviderUnavailable)

    def process_session(self, *, session_id: str, target: SessionTarget, invoice_id: str,
                        payment_id: str, cost_amount: int, currency: str,
                        trx_id: str | None = None, route: tuple[int, int] | None = None,
                        reason: str | None = None, cart: list[dict[str, Any]] | None = None,
                        trx_extra: dict[str, str] | None = None) -> SessionResult:
        """Run the session one call further. `route` is (provider_id, terminal_id); `cart` the
        capture's lines as `{product, quantity, price: {amount, currency}}`; `trx_extra` the
        transaction's extra data the provider gave before."""
        if target not in ("captured", "cancelled"):
            raise ValueError(f"session target must be captured or cancelled, got {target!r}")
        if isinstance(cost_amount, bool) or not isinstance(cost_amount, int) or cost_amount < 0:
            raise ValueError(f"cost_amount must be a non-negative int, got {cost_amount!r}")
        body: dict[str, Any] = {
            "session_id": session_id,
            "target": target,
            "invoice_id": invoice_id,
            "payment_id": payment_id,
            "cost": {"amount": cost_amount, "currency": currency},
        }
        if trx_id is not None:
            body["trx_id"] = trx_id
        if route is not None:
            body["route"] = {"provider_id": route[0], "terminal_id": route[1]}
        if reason is not None:
            body["reason"] = reason
        if cart is not None:
            body["cart"] = {"lines": cart}
        if trx_extra:
            body["trx_extra"] = dict(trx_extra)
        # Idempotent by session_id: a repeat after a lost answer gets the same outcome.
        answer = self._http.post("/v1/sessions/process", body, idempotent=True)
        answer.raise_for_status(f"session {session_id}", rejected=ProviderRejected,
                                unavailable=ProviderUnavailable)
        return _result(session_id, answer.body)

    def close(self) -> None:
        self._http.close()


def _result(session_id: str, body: Any) -> SessionResult:
    try:
        answer = _Answer.model_validate(body)
    except ValidationError as exc:
        raise PeerBadAnswer(f"session {session_id}: malformed answer: {exc}") from exc
    if answer.status == "processing":
        if answer.poll_in_s is None or answer.poll_in_s < 0:
            raise PeerBadAnswer(f"session {session_id}: processing without a valid poll_in_s")
        return SessionResult("processing", poll_in_s=answer.poll_in_s)
    if answer.status == "succeeded":
        return SessionResult("succeeded", trx_id=answer.trx_id)
    if answer.failure is None:
        raise PeerBadAnswer(f"session {session_id}: failed without a failure")
    return SessionResult("failed", failure_code=answer.failure.code,
                         transient=answer.failure.transient)
