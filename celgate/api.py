"""The HTTP API (`celgate-api`): the business routers behind bearer auth, typed JSON errors.

Every error body is `{"code": ..., "message": ...}` (docs/contract.md), schema errors included, and
the OpenAPI document declares it for each status a route can answer. A database that cannot
be reached answers 503 `database_unavailable` on any route; `/health/ready` says which
dependency is down.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from celgate.settings import ApiSettings, get_all, get_settings
from foundation.errors import TypedError
from workers import logs
from workers.errors import ErrorBody

log = logging.getLogger(__name__)
access_log = logging.getLogger("celgate.access")

_bearer = HTTPBearer(auto_error=False)

DESCRIPTION = """\
Payments captured through event-sourced machines (Limiter, Accounter and the provider adapter
are its peers) and order cashback charged through billing's transactions service.

Every route but `/health` and `/health/ready` needs `Authorization: Bearer <API_TOKEN>`
(the billing balance callback is signed with `X-Signature` instead). Money is
`{"amount": <integer minor units>, "currency": "<ISO 4217>"}`; cashback values are decimal
strings. Every error has the body `{"code", "message"}`: 400 for a bad value, 401, 404 for an
unknown id, 409 for a wrong state or version, 422 for a body that does not fit the schema,
503 when a dependency (the database) is down.
"""


class Health(BaseModel):
    status: Literal["ok"]


class Checks(BaseModel):
    database: str
    broker: str


class Ready(BaseModel):
    status: Literal["ok"]
    checks: Checks


class NotReady(ErrorBody):
    checks: Checks


class Unauthorized(TypedError):
    code = "unauthorized"
    http_status = 401


def require_token(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> None:
    settings = get_settings()
    if settings.api_auth == "off":
        return
    expected = settings.api_token or ""
    given = credentials.credentials if credentials else ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("missing or wrong bearer token")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def create_app() -> FastAPI:
    from cashback.api import balance_router
    from cashback.api import router as cashback_router
    from celgate.machines_api import router as machines_router
    from payments.api import router as payments_router
    from workers.metrics import register_database_gauges

    # /docs and /redoc load Swagger UI and ReDoc from assets shipped in a package, not a CDN.
    app = FastAPIOffline(title="celgate", version=_version(), description=DESCRIPTION)

    @app.get("/health", response_model=Health, tags=["operations"])
    def health() -> Health:
        """Liveness: the process serves requests."""
        return Health(status="ok")

    @app.get("/health/ready", response_model=Ready, tags=["operations"],
             responses={503: {"model": NotReady, "description": "a dependency is down"}})
    def ready() -> Any:
        """Readiness: PostgreSQL and the broker answer within READY_CHECK_TIMEOUT_S."""
        checks = readiness(get_settings().ready_check_timeout_s)
        down = {name: state for name, state in checks.items() if state != "ok"}
        if not down:
            return Ready(status="ok", checks=Checks(**checks))
        return JSONResponse(status_code=503, content={
            "code": "not_ready", "message": "; ".join(f"{k}: {v}" for k, v in down.items()),
            "checks": {name: "ok" if state == "ok" else "down" for name, state in checks.items()},
        })

    secured = [Depends(require_token)]
    register_database_gauges()

    @app.get("/metrics", dependencies=secured, tags=["operations"], response_class=Response,
             responses={200: {"description": "Prometheus text format",
                              "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}})
    def metrics() -> Response:
        """Prometheus metrics: machines, STQ rows and overdue timers by state (read from the
        database per scrape), failed cashback orders, and this process's own."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(payments_router, dependencies=secured)
    app.include_router(cashback_router, dependencies=secured)
    app.include_router(machines_router, dependencies=secured)
    # The billing callback authenticates by its HMAC signature instead of the bearer token.
    app.include_router(balance_router)
    add_error_handlers(app)
    declare_errors(app)
    app.add_middleware(AccessLog)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("celgate")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


# --- readiness ------------------------------------------------------------------------------


def readiness(timeout_s: float) -> dict[str, str]:
    """Each dependency's state, "ok" or why not, checked in parallel within `timeout_s`."""
    return _bounded({"database": _check_database, "broker": _check_broker}, timeout_s)


def _check_database() -> None:
    from sqlalchemy import text

    from workers.db import get_engine

    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_broker() -> None:
    from workers.celery_app import app as celery_app

    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=get_settings().ready_check_timeout_s)
        conn.default_channel  # noqa: B018 - opening a channel talks to the broker


def _bounded(checks: dict[str, Callable[[], None]], timeout_s: float) -> dict[str, str]:
    """Run the checks in daemon threads; one that hangs (a black-holed host) is "timeout"."""
    results: dict[str, str] = {}

    def run(name: str, check: Callable[[], None]) -> None:
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means not ready; the message says which
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            results[name] = f"{type(exc).__name__}: {first_line}".rstrip(": ")

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in checks.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {name: results.get(name, f"no answer in {timeout_s:g} s") for name in checks}


# --- errors ---------------------------------------------------------------------------------


def add_error_handlers(app: FastAPI) -> None:
    """Typed errors, schema errors, routing errors and a lost database as `{code, message}`."""

    @app.exception_handler(TypedError)
    async def typed_error(request: Request, exc: TypedError) -> JSONResponse:
        if exc.http_status is None:  # a failure (a peer, the runtime), not an answer
            return await crash(request, exc)
        return _error(exc.http_status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def schema_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        if exc.errors() and all(e["type"] == "string_unicode" for e in exc.errors()):
            # Well-formed JSON whose text is no valid Unicode (a lone surrogate escape): a
            # bad value, like text holding NUL.
            return _error(400, "invalid_text", details)
        return _error(422, "invalid_request", details or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, _UNDECODABLE_BODY):
            # FastAPI answers 400 for a JSON body it cannot decode other than a syntax error
            # (bytes that are not UTF-8, nesting deeper than the parser recurses); the
            # contract counts any body that is not valid JSON as a schema error.
            return _error(422, "invalid_request",
                          f"the body is not valid JSON: {_decode_reason(exc.__cause__)}")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            log.warning("database unavailable", extra={"path": request.url.path,
                                                        "error": str(exc.orig)[:300]})
            return _error(503, "database_unavailable",
                          "the database cannot be reached; try again later")
        return await crash(request, exc)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        # A bug, never an answer: logged with its traceback, answered as JSON all the same.
        log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
        return _error(500, "internal_error", "internal error")


_DESCRIPTIONS = {
    400: "a well-formed request with a value that cannot be accepted",
    401: "missing or wrong credentials",
    404: "unknown id",
    409: "wrong state or version",
    422: "the request does not fit the schema",
    429: "not yet: try again later",
    503: "a dependency (the database) is unavailable",
}
# POST routes that never answer 409: the callback and first-write-wins or pure calculations.
_NO_CONFLICT = re.compile(r"^/v1/(wallet/balance-callback|cashback/rates|cashback/calc)$")
_NOT_YET = {("post", "/v1/cashback/calc")}
_SIGNED = {"/v1/wallet/balance-callback"}  # 401 for a bad signature instead of the token
_HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer, from what it takes and does."""
    if path in ("/health", "/health/ready"):
        return set()  # about the process itself (ready declares its own 503 with checks)
    statuses = {503}
    places = {p.get("in") for p in operation.get("parameters", ())}
    takes_input = "requestBody" in operation or "query" in places
    if operation.get("security") or path in _SIGNED:
        statuses.add(401)
    if takes_input:
        statuses |= {400, 422}
    if "path" in places:
        statuses.add(404)
    if method == "post" and not _NO_CONFLICT.match(path):
        statuses.add(409)
    if (method, path) in _NOT_YET:
        statuses.add(429)
    return statuses


def declare_errors(app: FastAPI) -> None:
    """Declare the `{code, message}` body for each error status of each operation, 422
    included in place of FastAPI's default validation body (which we never send)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorBody"] = ErrorBody.model_json_schema()
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if method not in _HTTP_METHODS:
                    continue
                responses = operation.setdefault("responses", {})
                if "HTTPValidationError" in str(responses.get("422")):
                    del responses["422"]  # FastAPI's default body; ours is declared below
                for status in sorted(error_statuses(path, method, operation)):
                    responses[str(status)] = {
                        "description": _DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": ref}}}
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- access log -----------------------------------------------------------------------------


class AccessLog:
    """One line per request with its status, time, request id and the business ids it touched.

    Replaces uvicorn's access log, which knows nothing of the ids: those come from the path
    (`invoice_id`, `order_id`, ...) and from every `bind()` made while the request ran.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        with logs.bind(request_id=request_id), logs.collect_ids() as ids:
            try:
                await self.app(scope, receive, sending)
            finally:
                ids.update(logs.ids_of(scope.get("path_params") or {}))
                access_log.info(
                    "%s %s %s", scope["method"], scope["path"], status,
                    extra={"method": scope["method"], "path": scope["path"], "status": status,
                           "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                           **ids})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")[:128]
    return None


_UNDECODABLE_BODY = (UnicodeDecodeError, RecursionError)


def _decode_reason(cause: BaseException) -> str:
    if isinstance(cause, RecursionError):
        return "nested too deeply"
    return "not UTF-8"


def check_auth_configured(settings: ApiSettings) -> None:
    if settings.api_auth != "off" and not settings.api_token:
        raise SystemExit("API_TOKEN is not set; set it, or API_AUTH=off to run without auth")


def main() -> None:
    get_all()  # a bad value of any package's settings stops the API here
    settings = get_settings()
    check_auth_configured(settings)
    logs.configure_logging()
    uvicorn.run(create_app(), host=settings.api_host, port=settings.api_port, log_config=None,
                access_log=False)


if __name__ == "__main__":
    main()
