"""The HTTP API (`celgate-api`): the business routers behind bearer auth, typed JSON errors.

Every error body is `{"code": ..., "message": ...}` (CONTRACT.md), schema errors included.
"""

from __future__ import annotations

import hmac
import logging

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from workers.errors import TypedError
from workers.logs import configure_logging
from workers.settings import Settings, get_settings

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False)


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

    app = FastAPI(title="celgate", version="0.1.0")

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    secured = [Depends(require_token)]

    @app.get("/metrics", include_in_schema=False, dependencies=secured)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(payments_router, dependencies=secured)
    app.include_router(cashback_router, dependencies=secured)
    app.include_router(machines_router, dependencies=secured)
    # The billing callback authenticates by its HMAC signature instead of the bearer token.
    app.include_router(balance_router)
    add_error_handlers(app)
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Typed errors, schema errors and routing errors as `{code, message}` bodies."""

    @app.exception_handler(TypedError)
    async def typed_error(_: Request, exc: TypedError) -> JSONResponse:
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


_UNDECODABLE_BODY = (UnicodeDecodeError, RecursionError)


def _decode_reason(cause: BaseException) -> str:
    if isinstance(cause, RecursionError):
        return "nested too deeply"
    return "not UTF-8"


def check_auth_configured(settings: Settings) -> None:
    if settings.api_auth != "off" and not settings.api_token:
        raise SystemExit("API_TOKEN is not set; set it, or API_AUTH=off to run without auth")


def main() -> None:
    settings = get_settings()
    check_auth_configured(settings)
    configure_logging()
    uvicorn.run(create_app(), host=settings.api_host, port=settings.api_port, log_config=None)


if __name__ == "__main__":
    main()
