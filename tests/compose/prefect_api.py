"""The Prefect REST API of the stack, on its 127.0.0.1 published port, used as Augur uses it."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import httpx

DEPLOYMENT = "imagery-finder-study/default"
TERMINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


class RetryingTransport(httpx.HTTPTransport):
    """Resend a request the server could not answer: 502/503/504 and a dropped connection, as
    Prefect's own clients do, 500, which a starved server answers when its database pool
    times out, and no answer within the client's timeout (all counted in ``retried``; a
    persistent error still fails). Every request the scenario sends is a read or carries an
    idempotency key, so resending creates nothing."""

    ATTEMPTS = 8
    RETRYABLE = frozenset({500, 502, 503, 504})
    retried: dict[str, int] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                response = super().handle_request(request)
            except (
                httpx.ConnectError,
                httpx.RemoteProtocolError,
                httpx.ReadError,
                httpx.TimeoutException,
            ) as e:
                if attempt == self.ATTEMPTS:
                    raise
                self.retried[type(e).__name__] = self.retried.get(type(e).__name__, 0) + 1
            else:
                if response.status_code not in self.RETRYABLE or attempt == self.ATTEMPTS:
                    return response
                code = f"HTTP {response.status_code}"
                self.retried[code] = self.retried.get(code, 0) + 1
                response.close()
            time.sleep(min(3.0, 0.1 * 2**attempt))
        raise AssertionError("unreachable")


class PrefectApi:
    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.http = httpx.Client(
            base_url=api_url,
            timeout=30,
            transport=RetryingTransport(limits=httpx.Limits(max_connections=64)),
        )

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response, *expected: int) -> Any:
        assert response.status_code in (expected or (200,)), (
            f"{response.request.method} {response.request.url.path}: "
            f"HTTP {response.status_code} {response.text[:500]}"
        )
        return response.json()

    def healthy(self) -> bool:
        try:
            return self.http.get("/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def deployment(self) -> dict[str, Any]:
        return self._json(self.http.get(f"/deployments/name/{DEPLOYMENT}"))  # type: ignore[no-any-return]

    def work_pool(self, name: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/work_pools/{name}"))  # type: ignore[no-any-return]

    def online_workers(self, pool: str) -> list[dict[str, Any]]:
        workers = self._json(self.http.post(f"/work_pools/{pool}/workers/filter", json={}))
        return [w for w in workers if w.get("status") == "ONLINE"]

    def create_flow_run(
        self, deployment_id: str, parameters: dict[str, Any], idempotency_key: str
    ) -> httpx.Response:
        """Augur's trigger: the parameters and an idempotency key of its own."""
        return self.http.post(
            f"/deployments/{deployment_id}/create_flow_run",
            json={"parameters": parameters, "idempotency_key": idempotency_key},
        )

    def run_count(self, deployment_id: str) -> int:
        body = {"deployments": {"id": {"any_": [deployment_id]}}}
        return int(self._json(self.http.post("/flow_runs/count", json=body)))

    def flow_runs(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(ids)
        runs: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            body = {"flow_runs": {"id": {"any_": chunk}}, "limit": len(chunk)}
            for run in self._json(self.http.post("/flow_runs/filter", json=body)):
                runs[run["id"]] = run
        return runs

    def wait_for(
        self, ids: Iterable[str], states: Iterable[str] = TERMINAL, *, timeout: float
    ) -> dict[str, dict[str, Any]]:
        """Until every run is in one of ``states``; their last read otherwise fails."""
        ids, wanted = list(ids), set(states)
        deadline = time.monotonic() + timeout
        while True:
            runs = self.flow_runs(ids)
            state = {i: (runs.get(i, {}).get("state") or {}).get("type") for i in ids}
            pending = {i: s for i, s in state.items() if s not in wanted}
            if not pending:
                return runs
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(pending)} run(s) not in {sorted(wanted)} after {timeout} s: "
                    f"{dict(list(pending.items())[:10])}"
                )
            time.sleep(0.5)

    def retried_task_runs(self, flow_run_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Task runs of these flow runs that ran more than once (retries)."""
        body = {"flow_runs": {"id": {"any_": list(flow_run_ids)}}, "limit": 200}
        tasks = self._json(self.http.post("/task_runs/filter", json=body))
        return [t for t in tasks if int(t.get("run_count") or 0) > 1]

    def has_heartbeat(self, run_id: str) -> bool:
        query = {
            "filter": {
                "event": {"name": ["prefect.flow-run.heartbeat"]},
                "resource": {"id": [f"prefect.flow-run.{run_id}"]},
            },
            "limit": 1,
        }
        return bool(self._json(self.http.post("/events/filter", json=query))["events"])

    def timeline(self, run_id: str) -> str:
        """``Scheduled +0.0 s, Pending +1.9 s, Running +4.1 s, Completed +6.0 s``."""
        states = self._json(self.http.get("/flow_run_states/", params={"flow_run_id": run_id}))
        states.sort(key=lambda s: s["timestamp"])
        first = seconds(states[0]["timestamp"]) if states else 0.0
        return ", ".join(f"{s['name']} +{seconds(s['timestamp']) - first:.1f} s" for s in states)


def seconds(timestamp: str) -> float:
    """A timestamp of the API (ISO 8601) as seconds since the epoch."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
