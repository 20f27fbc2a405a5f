"""A real HTTP server on 127.0.0.1 standing in for Augur, for wire tests.

It records every request and answers from a script the test sets::

    with AugurStub() as stub:                      # or the ``augur_stub`` fixture
        stub.script([500, Reply(429, headers={"Retry-After": "1"}), 200])
        ...                                        # point the client at stub.url
        assert [r.path for r in stub.requests] == [...]

Each request consumes one scripted reply; once the script is used up every request gets
``200 {"status": "ok"}``. A bare int is ``Reply(status)``. ``Reply(stall=5.0)`` sleeps before
answering, to trip client timeouts; ``Reply(disconnect=True)`` closes the connection without
answering. Every connection is closed after one answer (no keep-alive), and :meth:`stop` wakes
stalled handlers and shuts open sockets, so stopping never waits on a client.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import pytest


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``json`` defaults to ``{"status": "ok"}`` on 2xx, else a ``detail``."""

    status: int = 200
    json: Any = None
    text: str | None = None  # raw body (sent as text/plain) instead of JSON
    headers: Mapping[str, str] = field(default_factory=dict)
    stall: float = 0.0  # seconds to sleep before answering
    disconnect: bool = False  # close the connection without answering


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    json: Any  # None when the body is not JSON
    time: float  # time.monotonic() when the request arrived

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class AugurStub:
    """The fake Augur: ``start``/``stop`` or ``with``; thread-safe ``script`` and ``requests``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Augur stub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def script(self, replies: Iterable[Reply | int]) -> None:
        """Replace what is left of the script: the next requests get these replies, in order."""
        with self._lock:
            self._script = deque(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._requests.clear()

    def start(self) -> Self:
        self._stopping.clear()
        server = ThreadingHTTPServer(self._address, _handler_for(self))
        server.daemon_threads = False  # server_close() joins handlers: stop leaves no thread
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="augur-stub",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            return self._script.popleft() if self._script else Reply()


def _handler_for(stub: AugurStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # a client that connects and says nothing cannot hold stop() for long

        def setup(self) -> None:
            threading.current_thread().name = "augur-stub-handler"
            super().setup()
            with stub._lock:
                stub._sockets.add(self.connection)

        def finish(self) -> None:
            with stub._lock:
                stub._sockets.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def _answer(self) -> None:
            arrived = time.monotonic()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                payload = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorded = RecordedRequest(self.command, self.path, headers, body, payload, arrived)
            reply = stub._next_reply(recorded)
            self.close_connection = True
            if reply.stall and stub._stopping.wait(reply.stall):
                return
            if reply.disconnect:
                return
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            if reply.text is not None:
                data, kind = reply.text.encode(), "text/plain; charset=utf-8"
            else:
                default = {"status": "ok"} if reply.status < 400 else _detail(reply.status)
                data = json.dumps(default if reply.json is None else reply.json).encode()
                kind = "application/json"
            with contextlib.suppress(OSError):  # the client may have given up already
                self.send_response(reply.status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output (and caplog) quiet

    return Handler


def _detail(status: int) -> dict[str, str]:
    try:
        return {"detail": HTTPStatus(status).phrase}
    except ValueError:
        return {"detail": f"HTTP {status}"}


@pytest.fixture
def augur_stub() -> Iterator[AugurStub]:
    """A started :class:`AugurStub`, stopped after the test."""
    with AugurStub() as stub:
        yield stub
