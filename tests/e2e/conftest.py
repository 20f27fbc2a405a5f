"""Real processes for the end-to-end tests: a Prefect server, ``noctis deploy``, a process worker.

Nothing here uses Prefect's test harness or Docker. The server is ``prefect server start`` on
127.0.0.1 (a free port, SQLite under a temporary PREFECT_HOME), shared by the tests of a
module; each test gets its own worker, whose environment carries that test's Atlas database
(``atlas_settings``) and the loopback Augur (``augur_stub``), exactly as a compose worker
gets them from ``.env``.

Every child starts in its own session and is stopped with its whole process tree (the flow-run
subprocesses a worker spawns start sessions of their own, so a process-group kill is not
enough): a failing test leaves no server, worker or flow run behind. Each child's output goes
to a log file, printed when a start-up fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from noctis.devtools.localdb import free_port
from noctis.settings import Settings
from tests.support.augur_stub import AugurStub, augur_stub

__all__ = ["augur_stub"]

BIN = Path(sys.executable).parent  # the venv's console scripts: prefect, noctis
WORK_POOL = "noctis-pool"
AUGUR_TOKEN = "augur-token-for-e2e"
SERVER_START_TIMEOUT = 300.0  # a loaded 2-core machine; healthy within seconds when idle
WORKER_START_TIMEOUT = 180.0


Proc = tuple[int, str]  # (pid, start time in clock ticks): a pid the kernel may reuse, pinned


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after ``comm`` (state, ppid, ...), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # comm may hold spaces and parentheses


def _proc(pid: int) -> Proc | None:
    fields = _stat(pid)
    return None if fields is None else (pid, fields[19])  # field 22 of stat: starttime


def _descendants(pid: int) -> list[Proc]:
    """Every live descendant of ``pid`` (Linux /proc), whatever session it started."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[Proc] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if (proc := _proc(child)) is not None:
                found.append(proc)
                todo.append(child)
    return found


def _alive(proc: Proc) -> bool:
    """The same process (not a reuse of its pid) exists and is not a zombie."""
    fields = _stat(proc[0])
    return fields is not None and fields[19] == proc[1] and fields[0] != "Z"


def _signal(procs: list[Proc], sig: signal.Signals) -> None:
    for proc in procs:
        if _alive(proc):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc[0], sig)


@dataclass
class Child:
    """A child process in its own session, with its output in ``log``."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, argv: list[str], env: Mapping[str, str], cwd: Path) -> Child:
        log = cwd / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return cls(name, process, log)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tree(self) -> list[Proc]:
        """The child and its descendants; empty once the child has been reaped."""
        if self.process.poll() is not None:
            return []
        root = _proc(self.process.pid)
        return [] if root is None else [root, *_descendants(self.process.pid)]

    def flow_run_environ(self) -> dict[str, str]:
        """The environment of the flow-run process (``python -m prefect.engine``) it runs."""
        for pid, _ in _descendants(self.process.pid):
            with contextlib.suppress(OSError):
                if b"prefect.engine" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    raw = Path(f"/proc/{pid}/environ").read_bytes()
                    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
                    return {key.decode(): value.decode(errors="replace") for key, value in pairs}
        raise AssertionError(f"{self.name} runs no flow-run process")

    def forked_runs(self) -> list[Proc]:
        """The flow-run processes the Noctis worker forked (``/proc/PID/comm``)."""
        found: list[Proc] = []
        for proc in _descendants(self.process.pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{proc[0]}/comm").read_text().strip() == "noctis-flowrun":
                    found.append(proc)
        return found

    def kill(self) -> None:
        """SIGKILL the whole tree at once, as a lost host or the OOM killer would."""
        tree = self.tree()
        _signal(tree, signal.SIGKILL)
        self.process.wait(timeout=10)
        _wait_dead(tree, timeout=10)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the tree, SIGKILL what is left after ``grace`` seconds; reap the child."""
        tree = self.tree()
        _signal(tree, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(proc) for proc in tree):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.1)
        _signal([*tree, *_descendants(self.process.pid)], signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        _wait_dead(tree, timeout=10)


def _wait_dead(procs: list[Proc], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(proc) for proc in procs):
        if time.monotonic() > deadline:
            alive = [proc[0] for proc in procs if _alive(proc)]
            raise AssertionError(f"processes {alive} survived SIGKILL")
        time.sleep(0.05)


def clean_env(**extra: str) -> dict[str, str]:
    """This process' environment without any PREFECT_, ATLAS_ or NOCTIS_ setting, plus ``extra``.

    The children must see only the server, database and Augur of the test, never a profile or
    the PREFECT_API_URL of the test harness that another test module may have left active.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PREFECT_", "ATLAS_", "NOCTIS_"))
    }
    env.update(extra)
    return env


@dataclass(frozen=True)
class PrefectServer:
    api_url: str  # http://127.0.0.1:<port>/api
    home: Path  # PREFECT_HOME (SQLite database, profiles)
    child: Child

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a Prefect client of this server (CLI, worker, registrar)."""
        return clean_env(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            **extra,
        )

    def client(self) -> httpx.Client:
        """An API client that retries what Prefect calls retryable, as Augur's must."""
        return httpx.Client(base_url=self.api_url, timeout=30, transport=RetryingTransport())


class RetryingTransport(httpx.HTTPTransport):
    """Resend a request the server answered 502/503/504 (at most 8 times, 0.1 s to 3 s apart).

    The SQLite server answers ``503 {"exception_message": "Service Unavailable"}`` when its
    database is locked by a concurrent write (the worker's polls, the event services). Prefect's
    own client retries those; a REST caller has to as well, and with an idempotency key a
    resent ``create_flow_run`` cannot create a second run.
    """

    RETRYABLE = frozenset({502, 503, 504})
    ATTEMPTS = 8

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(1, self.ATTEMPTS + 1):
            response = super().handle_request(request)
            if response.status_code not in self.RETRYABLE or attempt == self.ATTEMPTS:
                return response
            response.close()
            time.sleep(min(3.0, 0.1 * 2**attempt))
        raise AssertionError("unreachable")


def _wait_until_healthy(server: Child, api_url: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the Prefect server did not become healthy:\n{server.output()[-5000:]}")


@contextlib.contextmanager
def running_prefect_server(home: Path, database_url: str) -> Iterator[PrefectServer]:
    """``prefect server start`` on 127.0.0.1 (free port), all services on, its database given;
    stopped afterwards. The e2e fixture's and benchmarks/trigger.py's."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = clean_env(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=database_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PREFECT_API_LOG_RETRYABLE_ERRORS="true",
        # Proactive automations (the zombie-run one) are evaluated every second, not every 5,
        # and events are readable (/api/events/filter) half a second after they arrive.
        PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY="PT1S",
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL="0.5",
    )
    argv = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    child = Child.start("prefect-server", argv, env, home)
    try:
        _wait_until_healthy(child, api_url)
        yield PrefectServer(api_url=api_url, home=home, child=child)
    finally:
        child.stop()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` on 127.0.0.1 (free port, SQLite), all services on."""
    home = tmp_path_factory.mktemp("prefect-home")
    with running_prefect_server(home, f"sqlite+aiosqlite:///{home / 'prefect.db'}") as server:
        yield server


def noctis_deploy(server: PrefectServer, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``noctis deploy`` as compose's one-shot registrar runs it (the console script)."""
    return subprocess.run(
        [str(BIN / "noctis"), "deploy"],
        env=server.env(NOCTIS_WORK_POOL=WORK_POOL),
        cwd=cwd,  # no stray .env is read
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def deployed(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    """The deployment, its automation and its concurrency limit, registered by ``noctis deploy``."""
    outcome = noctis_deploy(prefect_server, tmp_path_factory.mktemp("deploy"))
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    return outcome


class StartWorker(Protocol):  # the ``start_worker`` fixture
    def __call__(
        self, *, wait: bool = True, worker_type: str = "process", env: dict[str, str] | None = None
    ) -> Child: ...


def worker_env(server: PrefectServer, atlas: Settings, augur: AugurStub) -> dict[str, str]:
    assert atlas.atlas_db_url is not None
    return server.env(
        # Poll the pool every second and start a run as soon as it is due.
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="1",
        PREFECT_RUNNER_HEARTBEAT_FREQUENCY="30",
        # What the flow reads (noctis.settings), as compose passes it from .env.
        ATLAS_DB_URL=atlas.atlas_db_url.get_secret_value(),
        NOCTIS_AUGUR_API_URL=augur.url,
        NOCTIS_AUGUR_API_TOKEN=AUGUR_TOKEN,
        NOCTIS_AUGUR_TIMEOUT="60",
    )


@pytest.fixture
def start_worker(
    prefect_server: PrefectServer,
    deployed: subprocess.CompletedProcess[str],
    atlas_settings: Settings,
    augur_stub: AugurStub,
    tmp_path: Path,
) -> Iterator[StartWorker]:
    """Starts ``prefect worker start --pool noctis-pool --type process`` (or ``--type noctis``,
    :mod:`noctis.worker`); stopped after the test."""
    started: list[Child] = []

    def start(
        *, wait: bool = True, worker_type: str = "process", env: dict[str, str] | None = None
    ) -> Child:
        argv = [
            *(str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", worker_type),
            *("--name", f"e2e-worker-{len(started)}", "--limit", "4"),
        ]
        environment = worker_env(prefect_server, atlas_settings, augur_stub) | (env or {})
        child = Child.start(f"worker-{len(started)}", argv, environment, tmp_path)
        started.append(child)
        if wait:  # until it has polled the pool once: ready to take a run
            _wait_for_worker(prefect_server, child, f"e2e-worker-{len(started) - 1}")
        return child

    try:
        yield start
    finally:
        for child in started:
            child.stop()
            print(f"\n--- {child.name} log (last lines) ---\n{child.output()[-3000:]}")


def _wait_for_worker(server: PrefectServer, child: Child, name: str) -> None:
    """Until the worker has registered with the pool (its first poll)."""
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    with server.client() as api:
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                break
            response = api.post(f"/work_pools/{WORK_POOL}/workers/filter", json={})
            if response.status_code == 200 and any(w["name"] == name for w in response.json()):
                return
            time.sleep(0.2)
    raise RuntimeError(f"worker {name} did not start:\n{child.output()[-5000:]}")
