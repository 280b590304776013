"""Task message handling shared by every Celery task of the project.

Messages are hints. A task validates its kwargs into a model, and a typed error (bad kwargs,
unknown id, command in the wrong state) is logged and acked instead of being retried by Celery:
durable retries come from rows in PostgreSQL, never from redelivering a bad message.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from celery import Task
from pydantic import BaseModel, ValidationError

from foundation.errors import TypedError
from workers.errors import MalformedTaskKwargs

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], kwargs: dict[str, Any]) -> M:
    try:
        return model.model_validate(kwargs)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'kwargs'}: {e['msg']}" for e in exc.errors()
        )
        raise MalformedTaskKwargs(f"{model.__name__}: {details}") from None


class TypedTask(Task):
    """Acks and logs a typed answer once; no Celery-level retry for an answer that won't change."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            if args:
                raise MalformedTaskKwargs(f"{self.name} takes keyword arguments only")
            return super().__call__(**kwargs)
        except TypedError as error:
            if not error.is_answer:  # a failure to get an answer: Celery sees it raised
                raise
            log.error(
                "task rejected",
                extra={"task": self.name, "code": error.code, "error": error.message,
                       "task_args": repr(args)[:200], "kwargs": repr(kwargs)[:500]},
            )
            return {"rejected": error.code}
