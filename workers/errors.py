"""Runtime errors and the body of every error answer (the base is `foundation.errors`)."""

from __future__ import annotations

from pydantic import BaseModel

from foundation.errors import TypedError


class MalformedTaskKwargs(TypedError):
    code = "malformed_task_kwargs"
    http_status = 422


class ErrorBody(BaseModel):
    """The body of every error answer: `{code, message}`."""

    code: str
    message: str
