"""An in-memory billing `transactions` service: invoices and their asynchronous cashback.

`/v2/cashback/update` takes the TARGET cashback per source. An accepted update bumps the
invoice's cashback version, adds an operation (`processing`) and puts the cashback
`in-progress`; once the configured delay has passed the operation ends with the next
configured outcome: `success` (the reward becomes the rewarded cashback) or `failed` (the
rewarded cashback stays). Operations settle lazily, on the next request that looks at the
invoice, so no background thread is needed and delay 0 settles at the very next read.

Answers follow docs/contract.md: the same operation id again is 200 with no new operation, a stale
version (or an update while one is in progress) is 409, an unknown invoice 404, a negative or
malformed amount 400. Every amount is a decimal string in both directions.

Control API under `/_sandbox/`: `invoices` (create or replace an invoice: its `sum_to_pay`,
`held` and `cleared` sums per payment type with their items, and its cashback state),
`settings` (delay, outcomes), `state` (invoices with operations, plus the log of every update
call), `reset`, `faults` (sandbox/json_peer.py says what each fault does;
the `match` operations are "invoice/retrieve" and "cashback/update").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.control import control_routes, error, parse_control_body, sandbox_app
from sandbox.faults import JSON_FAULTS, Faults
from sandbox.json_peer import answer
from sandbox.transactions_bodies import InvoiceSeed, RetrieveBody, SettingsBody, UpdateBody
from sandbox.transactions_state import Refused, TransactionsState

RETRIEVE, UPDATE = "invoice/retrieve", "cashback/update"


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise Refused(400, "bad_request", "the body is not valid JSON") from None


def _validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                             for e in exc.errors())
        raise Refused(400, "bad_request", problems) from None


def create_app(state: TransactionsState | None = None, faults: Faults | None = None) -> Starlette:
    state = state or TransactionsState()
    faults = faults or Faults(JSON_FAULTS)

    async def with_faults(operation: str, request: Request,
                          handle: Callable[[Any], dict[str, Any]]) -> Response:
        """Answer `handle(body)` under the fault plan; a refusal becomes its error answer."""
        try:
            data = await _json_body(request)
        except Refused as refused:
            data = refused

        def run() -> Response:
            try:
                if isinstance(data, Refused):
                    raise data
                return JSONResponse(handle(data))
            except Refused as refused:
                return error(refused.status, refused.code, str(refused))

        return await answer(faults, operation, run)

    def retrieve_invoice(data: Any) -> dict[str, Any]:
        return state.retrieve(_validate(RetrieveBody, data).id)

    def update_cashback(data: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"body": data}
        try:
            body = _validate(UpdateBody, data)
            entry.update(invoice_id=body.invoice_id, operation_id=body.operation_id,
                         version=body.version)
            entry["outcome"] = state.update(body)
        except Refused as refused:
            entry["outcome"] = refused.code
            raise
        finally:
            state.log_update(entry)
        return {}

    async def retrieve(request: Request) -> Response:
        return await with_faults(RETRIEVE, request, retrieve_invoice)

    async def update(request: Request) -> Response:
        return await with_faults(UPDATE, request, update_cashback)

    async def seed(request: Request) -> JSONResponse:
        try:
            body = await parse_control_body(request, InvoiceSeed)
            return JSONResponse(state.seed(body), status_code=201)
        except Refused as refused:
            return error(400, "bad_request", str(refused))

    async def configure(request: Request) -> JSONResponse:
        body = await parse_control_body(request, SettingsBody)
        return JSONResponse(state.configure(body))

    async def show_settings(request: Request) -> JSONResponse:
        return JSONResponse(state.settings())

    return sandbox_app([
        Route("/v2/invoice/retrieve", retrieve, methods=["POST"]),
        Route("/v2/cashback/update", update, methods=["POST"]),
        Route("/_sandbox/invoices", seed, methods=["POST"]),
        Route("/_sandbox/settings", configure, methods=["POST"]),
        Route("/_sandbox/settings", show_settings, methods=["GET"]),
        *control_routes(state, faults),
    ])
