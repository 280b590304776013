"""The base of every error that is an answer, not a crash.

A typed error carries a machine-readable `code` and the HTTP status the API maps it to. A
Celery task that raises one logs it and acks the message: retrying cannot change the answer.
"""

from __future__ import annotations

from pydantic import BaseModel


class TypedError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class MalformedTaskKwargs(TypedError):
    code = "malformed_task_kwargs"
    http_status = 422


class ErrorBody(BaseModel):
    """The body of every error answer: `{code, message}`."""

    code: str
    message: str
