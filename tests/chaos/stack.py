"""The real parts of the chaos run, as processes: nothing in-process but the Augur stub.

- Atlas: a fresh database of the tests' PostGIS (tests/support/postgis.py), migrated.
- Prefect: ``prefect server start`` on 127.0.0.1 with its state in another database of the same
  PostgreSQL cluster (as compose.yml runs it), ``register()`` (what ``noctis deploy`` does:
  the study's deployment, the dispatcher on its schedule, the zombie and crash automations).
- A process worker (``prefect worker start --type process``), restartable after a SIGKILL.
- Augur: :class:`~tests.support.augur_stub.AugurStub` deduplicating by Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy.engine import URL

from noctis import migrate
from noctis.db import libpq_dsn
from noctis.deployment import FULL_NAME, register
from noctis.devtools.localdb import free_port
from noctis.settings import Settings
from tests.e2e.conftest import BIN, Child, PrefectServer, RetryingTransport, clean_env
from tests.support.augur_stub import AugurStub

WORK_POOL = "noctis-chaos-pool"
AUGUR_TOKEN = "augur-token-for-the-chaos-run"


@dataclass
class Stack:
    admin_url: URL  # the PostGIS cluster (superuser)
    atlas: Settings
    server: PrefectServer
    augur: AugurStub
    workdir: Path
    augur_env: dict[str, str]
    worker_limit: int
    workers: list[Child] = field(default_factory=list)

    @property
    def atlas_dsn(self) -> str:
        return libpq_dsn(self.atlas.atlas_url)

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.api_url, timeout=60, transport=RetryingTransport())

    # ------------------------------------------------------------------ the worker

    @property
    def worker(self) -> Child | None:
        return self.workers[-1] if self.workers else None

    def start_worker(self) -> Child:
        assert self.atlas.atlas_db_url is not None
        name = f"chaos-worker-{len(self.workers)}"
        argv = [
            *(str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"),
            *("--name", name, "--limit", str(self.worker_limit)),
        ]
        env = self.server.env(
            PREFECT_WORKER_QUERY_SECONDS="2",
            PREFECT_WORKER_PREFETCH_SECONDS="2",
            ATLAS_DB_URL=self.atlas.atlas_db_url.get_secret_value(),
            NOCTIS_AUGUR_API_URL=self.augur.url,
            NOCTIS_AUGUR_API_TOKEN=AUGUR_TOKEN,
            **self.augur_env,
        )
        child = Child.start(name, argv, env, self.workdir)
        self.workers.append(child)
        return child

    def kill_worker(self) -> None:
        """SIGKILL the worker with every flow-run process it started."""
        if self.worker is not None:
            self.worker.kill()

    def flow_run_processes(self) -> dict[str, int]:
        """The live flow-run processes of the current worker: flow run id -> pid."""
        from tests.e2e.conftest import _descendants

        found: dict[str, int] = {}
        if self.worker is None or self.worker.process.poll() is not None:
            return found
        for pid, _ in _descendants(self.worker.process.pid):
            with contextlib.suppress(OSError):
                if b"prefect.engine" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                for item in environ:
                    if item.startswith(b"PREFECT__FLOW_RUN_ID="):
                        found[item.split(b"=", 1)[1].decode()] = pid
        return found

    # ------------------------------------------------------------------ Prefect

    def trigger(self, deployment_id: str, finder: int, dream: int) -> str:
        """Create a run of the study's deployment as Augur does (an idempotency key)."""
        with self.api() as api:
            response = api.post(
                f"/deployments/{deployment_id}/create_flow_run",
                json={
                    "parameters": {"imagery_finder_pk": finder, "dream_pk": dream},
                    "idempotency_key": f"chaos:{finder}:{dream}",
                },
            )
        response.raise_for_status()
        return str(response.json()["id"])

    def deployment_id(self, name: str = FULL_NAME) -> str:
        with self.api() as api:
            response = api.get(f"/deployments/name/{name}")
        response.raise_for_status()
        return str(response.json()["id"])

    def flow_runs(self, deployment_id: str) -> list[dict[str, Any]]:
        """Every run of a deployment (id, state type and name, message), paged."""
        runs: list[dict[str, Any]] = []
        with self.api() as api:
            while True:
                response = api.post(
                    "/flow_runs/filter",
                    json={
                        "deployments": {"id": {"any_": [deployment_id]}},
                        "sort": "ID_DESC",
                        "limit": 200,
                        "offset": len(runs),
                    },
                )
                response.raise_for_status()
                page = response.json()
                runs += page
                if len(page) < 200:
                    return runs


def _prefect_server(database_url: str, home: Path) -> PrefectServer:
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = clean_env(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=database_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY="PT1S",
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL="0.5",
    )
    argv = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    child = Child.start("prefect-server", argv, env, home)
    try:
        _wait_until_healthy(child, api_url)
    except BaseException:
        child.stop()
        raise
    return PrefectServer(api_url=api_url, home=home, child=child)


def _wait_until_healthy(server: Child, api_url: str, timeout: float = 300) -> None:
    """Until the server answers: migrating Prefect's PostgreSQL database on a loaded
    machine takes longer than the e2e tests' SQLite start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not become healthy:\n{server.output()[-5000:]}")


def _create_database(admin_url: URL, prefix: str) -> URL:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_dsn(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.set(database=name)


def _drop_database(admin_url: URL, url: URL) -> None:
    with psycopg.connect(libpq_dsn(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


@contextlib.contextmanager
def chaos_stack(
    admin_url: URL,
    workdir: Path,
    *,
    dispatch_every: timedelta,
    zombie_after: timedelta,
    augur_env: dict[str, str],
    worker_limit: int = 4,
) -> Iterator[Stack]:
    """Everything started, registered and a worker polling; all of it stopped on exit."""
    atlas_url = _create_database(admin_url, "chaos_atlas")
    prefect_url = _create_database(admin_url, "chaos_prefect")
    atlas = Settings(
        atlas_db_url=atlas_url.render_as_string(hide_password=False),
        _env_file=None,
    )
    server: PrefectServer | None = None
    stack: Stack | None = None
    try:
        migrate.upgrade(atlas)
        server = _prefect_server(prefect_url.render_as_string(hide_password=False), workdir)
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            asyncio.run(
                register(
                    work_pool=WORK_POOL,
                    zombie_after=zombie_after,
                    link_concurrency_limit=8,
                    dispatch_every=dispatch_every,
                )
            )
        with AugurStub(dedupe=True) as augur:
            stack = Stack(admin_url, atlas, server, augur, workdir, augur_env, worker_limit)
            stack.start_worker()
            yield stack
    finally:
        if stack is not None:
            for worker in stack.workers:
                worker.stop()
        if server is not None:
            server.child.stop()
        _drop_database(admin_url, atlas_url)
        _drop_database(admin_url, prefect_url)
