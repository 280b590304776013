"""One base for every error the project raises on purpose: `TypedError`.

Each carries a machine-readable `code`, whether asking again later may help (`transient`) and,
when it is an answer to a request, the HTTP status the API gives it (`http_status`):

- an answer (`http_status` set: a bad value, an unknown id, a wrong state): the API returns it
  as `{code, message}`, a task logs and acks it; repeating the request changes nothing;
- a failure to get an answer (`http_status` None: a peer that could not be reached or broke
  its contract, a step that cannot go on): retried where `transient`, otherwise left to an
  operator. Machines and STQ read `transient`; nothing keeps a list of retryable classes.
"""

from __future__ import annotations

import re
from typing import ClassVar


class TypedError(Exception):
    code: ClassVar[str] = "error"
    transient: ClassVar[bool] = False
    http_status: ClassVar[int | None] = None

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        if code is not None:
            self.code = code  # type: ignore[misc] - an instance may name its own code

    @property
    def message(self) -> str:
        return str(self)

    @property
    def is_answer(self) -> bool:
        return self.http_status is not None


def is_transient(exc: BaseException) -> bool:
    """Whether a repeat later may succeed: only a typed error that says so."""
    return isinstance(exc, TypedError) and exc.transient


def code_of(exc: BaseException) -> str:
    """The code of a typed error (or of another exception that names one); else the class
    name in snake case (`ValueError` -> `value_error`), so every recorded failure has one."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
