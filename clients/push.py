"""Client of the push sender: silent pushes that tell the user's devices to refresh.

A silent push is not idempotent (a repeat reaches the device twice, which only costs a
refresh), so it is never repeated inline: after PushUnavailable the caller's task retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clients.json_http import JsonHttp, PeerError, PeerRejected, PeerUnavailable


class PushError(PeerError):
    code = "push_error"


class PushRejected(PushError, PeerRejected):
    """The sender refused the push itself (4xx): repeating it will not help."""

    code = "push_rejected"


class PushUnavailable(PushError, PeerUnavailable):
    """Unreachable, failing (5xx) or rate limiting (429): the push may or may not have gone."""

    code = "push_unavailable"


class PushClient:
    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self._http = JsonHttp(base_url, timeout_s=timeout_s, attempts=1,
                              unavailable=PushUnavailable)

    def send_silent(self, yandex_uid: str, payload: Mapping[str, Any]) -> None:
        if not yandex_uid:
            raise ValueError("yandex_uid must not be empty")
        answer = self._http.post("/v1/push/silent",
                                 {"yandex_uid": yandex_uid, "payload": dict(payload)},
                                 idempotent=False)
        answer.raise_for_status(f"silent push to {yandex_uid}", rejected=PushRejected,
                                unavailable=PushUnavailable)

    def close(self) -> None:
        self._http.close()
