"""A real HTTP server on 127.0.0.1 standing in for Augur, for wire tests.

It records every request and answers from a script the test sets::

    with AugurStub() as stub:                      # or the ``augur_stub`` fixture
        stub.script([500, Reply(429, headers={"Retry-After": "1"}), 200])
        ...                                        # point the client at stub.url
        assert [r.path for r in stub.requests] == [...]

Each request consumes one scripted reply; once the script is used up every request gets the
fallback (``stub.fallback(Reply(503))``; by default ``200 {"status": "ok"}``). A bare int is
``Reply(status)``. ``Reply(stall=5.0)`` sleeps before answering, to trip client timeouts;
``Reply(disconnect=True)`` closes the connection without answering. Every connection is closed
after one answer (no keep-alive), and :meth:`stop` wakes stalled handlers and shuts open
sockets, so stopping never waits on a client; :meth:`start` again (same port) brings it back,
so a stopped stub is an Augur that refuses connections.

With ``dedupe=True`` the stub deduplicates as Augur does: a request whose Idempotency-Key it
already took (answered 2xx) gets ``409 already received`` instead of a 2xx. Each recorded
request keeps the status it was answered (None: no answer), so :meth:`accepted` lists what
Augur took.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
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
    wall: float = 0.0  # time.time() when the request arrived
    status: int | None = None  # the status answered; None when the connection was dropped

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def taken(self) -> bool:
        """Augur took it (a 2xx): the notification was received, whatever the client saw."""
        return self.status is not None and 200 <= self.status < 300


class AugurStub:
    """The fake Augur: ``start``/``stop`` or ``with``; thread-safe ``script`` and ``requests``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, dedupe: bool = False) -> None:
        self._address = (host, port)
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._only: Callable[[Any], bool] | None = None
        self._fallback = Reply()
        self._taken: set[str] = set()
        self.dedupe = dedupe
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where it answers; once started, also while stopped (refusing connections there)."""
        host, port = self._address
        if port == 0:
            raise RuntimeError("the Augur stub has never been started: it has no port yet")
        return f"http://{host!s}:{port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def script(
        self, replies: Iterable[Reply | int], *, only: Callable[[Any], bool] | None = None
    ) -> None:
        """Replace what is left of the script: the next requests get these replies, in order.

        With ``only``, a predicate on a request's JSON body, the script answers only the
        requests it accepts; the others get the fallback (a notification of another run, say).
        """
        with self._lock:
            self._script = deque(r if isinstance(r, Reply) else Reply(r) for r in replies)
            self._only = only

    def fallback(self, reply: Reply | int) -> None:
        """What every request gets once the script is used up."""
        with self._lock:
            self._fallback = reply if isinstance(reply, Reply) else Reply(reply)

    def accepted(self) -> list[RecordedRequest]:
        """The requests Augur took (answered 2xx)."""
        return [r for r in self.requests if r.taken]

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._only = None
            self._requests.clear()
            self._taken.clear()
            self._fallback = Reply()

    def start(self) -> Self:
        self._stopping.clear()
        server = ThreadingHTTPServer(self._address, _handler_for(self))
        host, port = server.server_address[:2]  # a restart comes back on the same port
        assert isinstance(host, str)  # an AF_INET server's address: (host, port)
        self._address = (host, port)
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
            scripted = self._script and (self._only is None or self._only(request.json))
            reply = self._script.popleft() if scripted else self._fallback
            key = request.header("Idempotency-Key")
            ok = 200 <= reply.status < 300 and not reply.disconnect
            if ok and self.dedupe and key is not None and key in self._taken:
                reply = Reply(409, json={"detail": "already received"}, stall=reply.stall)
            elif ok and key is not None:
                self._taken.add(key)
            status = None if reply.disconnect else reply.status
            self._requests.append(dataclasses.replace(request, status=status))
            return reply


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
            recorded = RecordedRequest(
                self.command, self.path, headers, body, payload, arrived, time.time()
            )
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
