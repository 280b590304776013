"""Both woody sandbox peers in one ASGI app, at the paths the real services use.

Accounter at `/accounter`, Limiter at `/v1/limiter` (the defaults of ACCOUNTER_URL and
LIMITER_URL on port 8022); each keeps its control API under its own prefix, e.g.
`/accounter/_sandbox/state`.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox import accounter, limiter

ACCOUNTER_PATH = "/accounter"
LIMITER_PATH = "/v1/limiter"


class PrefixDispatch:
    """Route by path prefix, the bare prefix included.

    Starlette's `Mount` redirects `/accounter` to `/accounter/`, but woody clients post to the
    bare service URL, so the prefix itself must reach the mounted app's "/" route.
    """

    def __init__(self, apps: Mapping[str, ASGIApp]) -> None:
        # Longest prefix first, so "/v1/limiter" wins over a hypothetical "/v1".
        self._apps = sorted(apps.items(), key=lambda item: len(item[0]), reverse=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _serve_lifespan(receive, send)
            return
        path: str = scope["path"]
        for prefix, app in self._apps:
            if path == prefix or path.startswith(prefix + "/"):
                rest = path[len(prefix):] or "/"
                root_path = scope.get("root_path", "") + prefix
                await app({**scope, "root_path": root_path, "path": root_path + rest,
                           "raw_path": (root_path + rest).encode()}, receive, send)
                return
        await PlainTextResponse("no sandbox peer here", status_code=404)(scope, receive, send)


async def _serve_lifespan(receive: Receive, send: Send) -> None:
    """The peers need no startup or shutdown work; just acknowledge both."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(accounter_state: accounter.AccounterState | None = None,
               limiter_state: limiter.LimiterState | None = None) -> ASGIApp:
    return PrefixDispatch({
        ACCOUNTER_PATH: accounter.create_app(accounter_state),
        LIMITER_PATH: limiter.create_app(limiter_state),
    })
