"""One error taxonomy: every error the project raises on purpose is a `TypedError` with a code,
a transient flag and (for an answer) an HTTP status, each class name once."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from collections import Counter

import pytest

from clients.json_http import PeerBadAnswer, PeerError, PeerRejected, PeerUnavailable
from clients.keepalive import AnswerLost, NotSent
from clients.transactions import RateLimited
from clients.woody import BusinessError, ResourceUnavailable, ResultUnexpected, ResultUnknown
from foundation.errors import TypedError, code_of, is_transient

PACKAGES = ("foundation", "clients", "workers", "payments", "cashback", "celgate")


def every_error_class() -> list[type[TypedError]]:
    for package in PACKAGES:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            # `__main__` modules run a program when imported.
            if ".migrations" not in module.name and not module.name.endswith(".__main__"):
                importlib.import_module(module.name)
    found, todo = [], [TypedError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__.split(".")[0] in PACKAGES]


def test_no_two_error_classes_share_a_name():
    names = Counter(cls.__name__ for cls in set(every_error_class()))

    assert [name for name, count in names.items() if count > 1] == []


def test_every_error_names_a_code_and_only_answers_carry_a_status():
    for cls in every_error_class():
        assert isinstance(cls.code, str) and cls.code, cls
        assert cls.http_status is None or 400 <= cls.http_status < 600, cls


@pytest.mark.parametrize("error, transient", [
    (NotSent("refused"), True),
    (AnswerLost("reset", timed_out=False), True),
    (ResourceUnavailable("refused"), True),
    (ResultUnknown("timeout"), True),
    (ResultUnexpected("500"), False),
    (BusinessError("InvalidRequest"), False),
    (PeerUnavailable("503"), True),
    (RateLimited("429"), True),
    (PeerRejected("400", status=400), False),
    (PeerBadAnswer("junk"), False),
    (RuntimeError("bug"), False),
])
def test_client_errors_say_themselves_whether_a_repeat_may_help(error, transient):
    assert is_transient(error) is transient
    assert error.transient is transient if isinstance(error, TypedError) else True


def test_client_errors_are_failures_not_answers():
    for cls in (PeerError, NotSent, AnswerLost, ResourceUnavailable, ResultUnknown,
                ResultUnexpected, BusinessError):
        assert issubclass(cls, TypedError) and cls.http_status is None, cls


@pytest.mark.parametrize("error, code", [
    (ResultUnknown("timeout"), "result_unknown"),
    (TypedError("x", code="unsupported_action"), "unsupported_action"),
    (ValueError("bug"), "value_error"),
    (TimeoutError("slow"), "timeout_error"),
])
def test_every_failure_has_a_code_for_the_record(error, code):
    assert code_of(error) == code


def test_the_bottom_layer_imports_nothing_of_the_project():
    probe = ("import sys, foundation.errors, foundation.retry, foundation.currencies; "
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(PACKAGES)!r}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)

    assert result.stdout.strip() == "['foundation']"


def test_the_clients_import_nothing_of_the_runtime():
    """`import workers` builds the Celery app: a client must not pay for it."""
    probe = ("import sys, clients.accounter, clients.limiter, clients.provider, "
             "clients.transactions, clients.push, clients.wallet; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'workers', 'celery', 'payments', 'cashback', 'celgate'}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)

    assert result.stdout.strip() == "[]"
