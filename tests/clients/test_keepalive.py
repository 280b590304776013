"""The peers' HTTP transport against a raw socket server that answers exactly the bytes given.

Real peers answer with a Content-Length; these tests cover what other servers and proxies may
send (chunks, a body ended by closing, `Connection: close`) and what can go wrong (truncation,
garbage, silence, a connection closed while idle).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from clients.keepalive import AnswerLost, KeepAlive, NotSent

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

# What the server does with one request: the bytes to answer, and whether to close afterwards.
Script = Callable[[bytes], tuple[bytes, bool]]


@dataclass
class RawServer:
    """Reads each request whole, answers `script(request)`; counts connections and requests."""

    script: Script = lambda request: (OK, False)
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    open_sockets: list[socket.socket] = field(default_factory=list)

    def serve(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self.connections += 1
            self.open_sockets.append(conn)
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def _serve_connection(self, conn: socket.socket) -> None:
        try:
            self._answer_requests(conn)
        except OSError:  # the test closed the connection
            pass

    def _answer_requests(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
                self.requests.append(request)
                answer, close = self.script(request)
                conn.sendall(answer)
                if close:
                    return


@pytest.fixture
def server() -> Iterator[tuple[RawServer, str]]:
    listener = socket.create_server(("127.0.0.1", 0))
    raw = RawServer()
    threading.Thread(target=raw.serve, args=(listener,), daemon=True).start()
    yield raw, f"http://127.0.0.1:{listener.getsockname()[1]}/rpc"
    listener.close()
    for sock in raw.open_sockets:
        sock.close()


def _post(client: KeepAlive, timeout_s: float = 2.0):
    return client.request("POST", client.target, b"body", {"X-Id": "1"}, timeout_s)


def test_keeps_one_connection_for_consecutive_requests(server) -> None:
    raw, url = server
    client = KeepAlive(url)
    answers = [_post(client) for _ in range(3)]
    assert [(a.status, a.body) for a in answers] == [(200, b"ok")] * 3
    assert raw.connections == 1
    first = raw.requests[0]
    assert first.startswith(b"POST /rpc HTTP/1.1\r\n")
    assert b"\r\nContent-Length: 4\r\n" in first and first.endswith(b"\r\n\r\nbody")


def test_a_chunked_answer_is_joined_and_headers_are_lower_case(server) -> None:
    raw, url = server
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
               b"Woody.Error-Class: Business Error\r\n\r\n"
               b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    raw.script = lambda request: (chunked, False)
    client = KeepAlive(url)
    answer = _post(client)
    assert (answer.body, answer.headers["woody.error-class"]) == (b"abcde", "Business Error")
    _post(client)
    assert raw.connections == 1


def test_an_answer_ended_by_closing_is_read_to_the_end_and_not_reused(server) -> None:
    raw, url = server
    raw.script = lambda request: (b"HTTP/1.0 503 Service Unavailable\r\n\r\npartial body", True)
    client = KeepAlive(url)
    assert (_post(client).status, _post(client).body) == (503, b"partial body")
    assert raw.connections == 2


def test_connection_close_is_honoured(server) -> None:
    raw, url = server
    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    raw.script = lambda request: (closing, True)
    client = KeepAlive(url)
    _post(client)
    _post(client)
    assert raw.connections == 2


def test_bytes_past_the_answer_leave_it_whole_and_the_connection_unused(server) -> None:
    raw, url = server
    raw.script = lambda request: (OK + b"HTTP/1.1 200 OK\r\n", False)
    client = KeepAlive(url)
    assert [(a.status, a.body) for a in (_post(client), _post(client))] == [(200, b"ok")] * 2
    assert raw.connections == 2


def test_an_idle_connection_the_peer_closed_is_replaced_before_sending(server) -> None:
    raw, url = server
    client = KeepAlive(url)
    _post(client)
    raw.open_sockets[0].shutdown(socket.SHUT_RDWR)  # the peer's keep-alive timeout
    time.sleep(0.05)
    assert _post(client).body == b"ok"
    assert raw.connections == 2 and len(raw.requests) == 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", id="truncated"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", id="chunks"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Len", id="headers"),
        pytest.param(b"", id="nothing"),
    ],
)
def test_an_answer_cut_short_is_lost(server, answer: bytes) -> None:
    raw, url = server
    raw.script = lambda request: (answer, True)
    with pytest.raises(AnswerLost) as lost:
        _post(KeepAlive(url))
    assert not lost.value.timed_out


def test_garbage_is_lost_not_misread(server) -> None:
    raw, url = server
    raw.script = lambda request: (b"SSH-2.0-OpenSSH\r\n\r\n", False)
    with pytest.raises(AnswerLost):
        _post(KeepAlive(url))


def test_silence_is_a_timeout(server) -> None:
    raw, url = server
    raw.script = lambda request: (b"", False)
    started = time.monotonic()
    with pytest.raises(AnswerLost) as lost:
        _post(KeepAlive(url), timeout_s=0.3)
    assert lost.value.timed_out and time.monotonic() - started < 1.0


def test_a_line_break_in_a_header_is_refused_before_sending(server) -> None:
    raw, url = server
    client = KeepAlive(url)
    with pytest.raises(ValueError):
        client.request("POST", client.target, b"", {"woody.meta.x": "a\r\nInjected: 1"}, 2.0)
    assert raw.connections == 0


def test_a_refused_connection_is_not_sent() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NotSent):
        _post(KeepAlive(f"http://127.0.0.1:{port}/rpc"))
