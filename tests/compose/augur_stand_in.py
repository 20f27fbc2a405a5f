"""Augur's side of the wire inside the compose stack: records every notification it receives.

It runs in a container of the stack (compose.augur.yml), on the stack's network as
``http://augur:8080``, the way the real Augur would be reached by the workers. The scenario on
the host reads and steers it through its port published on 127.0.0.1:

    GET  /_stand-in/requests   every request recorded so far (JSON list, oldest first)
    POST /_stand-in/script     the next replies, in order: [{"status": 200, "stall": 0}, ...]
    POST /_stand-in/reset      forget the requests and the script; release stalled replies
    GET  /_stand-in/health     200

Any other request is Augur's: recorded, then answered from the script (``stall`` seconds
later) or with ``200 {"status": "ok"}`` once the script is used up. Standard library only, so
any Python image runs it: ``python augur_stand_in.py [--port 8080]``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTROL = "/_stand-in/"


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.script: deque[dict[str, Any]] = deque()
        self.released = threading.Event()  # set by reset: stalled replies return at once

    def record(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.requests.append(request)
            return self.script.popleft() if self.script else {}

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.script.clear()
            released, self.released = self.released, threading.Event()
        released.set()


def handler_for(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (a timeout, a killed worker)
                pass
            self.close_connection = True

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _control(self) -> None:
            action = self.path[len(CONTROL) :]
            if self.command == "GET" and action == "health":
                self._send(200, {"status": "ok"})
            elif self.command == "GET" and action == "requests":
                with recorder.lock:
                    self._send(200, list(recorder.requests))
            elif self.command == "POST" and action == "script":
                replies = json.loads(self._body() or b"[]")
                with recorder.lock:
                    recorder.script = deque(replies)
                self._send(200, {"scripted": len(replies)})
            elif self.command == "POST" and action == "reset":
                self._body()
                recorder.reset()
                self._send(200, {"status": "reset"})
            else:
                self._send(404, {"detail": f"no {self.command} {self.path}"})

        def _augur(self) -> None:
            body = self._body()
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                payload = None
            reply = recorder.record(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "json": payload,
                    "body": body.decode(errors="replace"),
                    "received_at": time.time(),
                }
            )
            released = recorder.released
            if reply.get("stall") and released.wait(float(reply["stall"])):
                return  # reset while stalled: drop the connection unanswered
            status = int(reply.get("status", 200))
            self._send(status, {"status": "ok"} if status < 400 else {"detail": f"HTTP {status}"})

        def _dispatch(self) -> None:
            if self.path.startswith(CONTROL):
                self._control()
            else:
                self._augur()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        def log_message(self, format: str, *args: Any) -> None:
            pass  # headers carry a bearer token: nothing about requests goes to the logs

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")  # inside its container
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), handler_for(Recorder()))
    server.daemon_threads = True
    print(f"Augur stand-in listening on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
