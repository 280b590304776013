"""HTTP/1.1 requests to one peer over kept-alive connections: a socket and a C response parser.

A peer call is a small request on a hot path. A general-purpose client spends several times
the exchange itself in CPU (requests about 0.9 ms a call here, the standard library's
http.client about 0.3 ms, most of it parsing response headers with the email package); this
one writes the request in one piece and lets httptools (llhttp, the parser uvicorn uses) read
the answer: about 0.08 ms. It does only what a peer call needs: no redirects, proxies,
cookies or compression. A failure is reported by what it means for a retry:

- `NotSent`: no connection could be opened, so the request never left this process;
- `AnswerLost`: the request was (or may have been) sent, but no complete answer came back:
  a timeout, a dropped connection, a truncated or unparsable response.

Idle connections are kept for the next request. One found closed by the peer in the meantime
(a keep-alive timeout) is replaced before anything is written to it.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from foundation.errors import TypedError

# Idle connections kept per peer: one per thread that calls it at the same time is enough.
_MAX_IDLE = 8
_RECV_BYTES = 65536
# Characters that would end a request line or header early and smuggle in another one.
_FORBIDDEN = ("\r", "\n", "\0")


class NotSent(TypedError):
    """Nothing was sent: the connection could not be opened (refused, unreachable, timeout)."""

    code = "not_sent"
    transient = True


class AnswerLost(TypedError):
    """The request may have reached the peer, but its answer did not come back whole."""

    code = "answer_lost"
    transient = True

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header's values joined by ", "
    body: bytes


class _Reading:
    """One response read off a connection: the parser and its callbacks.

    Informational (1xx) responses are skipped. Bytes after the response mean the connection
    is out of step with its requests; they are ignored and the connection is not reused.
    """

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.headers_complete = False
        self.complete = False
        self.keep_alive = False
        self.trailing = False

    def on_message_begin(self) -> None:
        if self.complete:
            self.trailing = True
        else:
            self.headers, self.chunks, self.headers_complete = {}, [], False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.complete:
            return
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.headers_complete = True

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status >= 200 and not self.complete:
            self.status, self.complete = status, True
            self.keep_alive = self.parser.should_keep_alive()

    def feed(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def end_of_connection(self) -> None:
        """The peer closed the connection: that ends a body with neither a length nor chunks;
        any other unfinished answer was cut short."""
        delimited_by_close = (
            "content-length" not in self.headers
            and "chunked" not in self.headers.get("transfer-encoding", "").lower())
        if not (self.headers_complete and delimited_by_close):
            raise ConnectionError("the peer closed the connection before the answer was whole")
        self.status, self.complete = self.parser.get_status_code(), True


class KeepAlive:
    """Requests to the peer at `url` (scheme, host and port; the path is the default target)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an http(s) URL with a host is needed, got {url!r}")
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if parts.port is None else f"{host}:{parts.port}"
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()

    def request(self, method: str, target: str, body: bytes | None, headers: dict[str, str],
                timeout_s: float) -> Answer:
        """One request; `timeout_s` bounds connecting and every wait for the answer."""
        message = self._message(method, target, body, headers)
        sock = self._connection(timeout_s)
        try:
            sock.sendall(message)
            reading = _read_response(sock)
        except TimeoutError as exc:
            sock.close()
            raise AnswerLost(f"receive timeout: {exc}", timed_out=True) from exc
        except (OSError, httptools.HttpParserError) as exc:
            sock.close()
            raise AnswerLost(f"{type(exc).__name__}: {exc}", timed_out=False) from exc
        if reading.keep_alive and not reading.trailing:
            self._release(sock)
        else:
            sock.close()
        return Answer(reading.status, reading.headers, b"".join(reading.chunks))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    def _message(self, method: str, target: str, body: bytes | None,
                 headers: dict[str, str]) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        if " " in target or any(char in line for line in lines for char in _FORBIDDEN):
            raise ValueError(f"{method} {target!r}: a line break, a NUL or (in the target) a "
                             "space would change the request")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def _connection(self, timeout_s: float) -> socket.socket:
        while True:
            with self._lock:
                sock = self._idle.pop() if self._idle else None
            if sock is None:
                return self._open(timeout_s)
            if not _closed_by_peer(sock):
                sock.settimeout(timeout_s)
                return sock
            sock.close()

    def _open(self, timeout_s: float) -> socket.socket:
        try:
            sock = socket.create_connection((self._host, self._port), timeout=timeout_s)
        except OSError as exc:  # refused, DNS, unreachable, connect timeout
            raise NotSent(f"cannot connect: {type(exc).__name__}: {exc}") from exc
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            except OSError as exc:  # the handshake failed: no request was written
                sock.close()
                raise NotSent(f"TLS handshake: {type(exc).__name__}: {exc}") from exc
        # The request goes out in one write; don't let it wait for an ack of the previous one.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append(sock)
                return
        sock.close()


def _read_response(sock: socket.socket) -> _Reading:
    reading = _Reading()
    while not reading.complete:
        data = sock.recv(_RECV_BYTES)
        if data:
            reading.feed(data)
        else:
            reading.end_of_connection()
    return reading


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle connection with something to read has been closed (or spoken on) by the peer:
    either way it cannot carry the next request."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
