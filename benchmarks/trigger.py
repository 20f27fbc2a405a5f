"""Trigger to Augur notification: Prefect's process worker against the Noctis worker.

::

    uv run python -m benchmarks.trigger                       # 3 rounds x 5 timed triggers
    uv run python -m benchmarks.trigger --rounds 1 --triggers 2 --json out.json
    uv run python -m benchmarks.trigger --write               # its section of RESULTS.md

The stack the e2e tests build (tests/e2e/conftest.py), once: ``prefect server start`` on a free
port on PostgreSQL, as compose runs it (``--prefect-db sqlite``: as the e2e tests), ``noctis
deploy``, a migrated Atlas database on a PostGIS found as the tests
find theirs (``NOCTIS_TEST_DATABASE_URL``, local binaries, Docker: tests/support/postgis.py; no
PostGIS is an error, never a skip) or on ``--server-url``, and the loopback Augur stub. The
dispatcher's and the standing matcher's schedules are paused (``--keep-schedules`` leaves
them on): their passes, every minute, would otherwise share the worker and the two cores with
the runs being timed. The study is the e2e one (``_seed``: five archive items, three match),
seeded once; the warm-up of the first worker links it, every later run is a rerun.

Each round starts each worker type in turn (process then noctis, the next round noctis then
process, ...) with the e2e tests' environment (``worker_env``: polls every second, prefetch 1 s),
times its start (from its process' start to registered with the pool, as the e2e tests wait for
it, and to ready: ``Worker 'NAME' started!``, its set-up done and polling; the Noctis worker
registers, then preloads its forkserver), once ready triggers one warm-up run (not in the
statistics; for the Noctis worker its forkserver's first fork of a run), then
``--triggers`` timed runs one after another, each once the previous one's process has exited.
A run's latency is the e2e test's: ``time.monotonic()`` before the POST of
``create_flow_run`` to the stub's ``RecordedRequest.time`` for that run's notification. Its
states (``/flow_run_states/``) split it: API (the POST to the Scheduled state), worker poll
(Scheduled to Pending), process start (Pending to Running: a fresh ``python -m prefect.engine``
and its imports, or a fork), the flow (Running to the notification's arrival).

This module imports the e2e tests' helpers (``tests.e2e``, ``tests.support``) rather than
copying them; only the ``prefect_server`` and ``start_worker`` fixture bodies are repeated,
briefly (fixtures cannot be called).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
import prefect
from sqlalchemy.engine import URL, make_url
from tests.e2e.conftest import (
    BIN,
    WORK_POOL,
    WORKER_START_TIMEOUT,
    Child,
    PrefectServer,
    Proc,
    _descendants,
    _wait_for_worker,
    noctis_deploy,
    running_prefect_server,
    worker_env,
)
from tests.e2e.test_trigger_like_augur import (
    TERMINAL,
    _create_flow_run,
    _deployment_id,
    _seed,
    _wait_for_notifications,
    _wait_for_state,
)
from tests.support.augur_stub import AugurStub
from tests.support.postgis import postgis_server

from benchmarks.db import create_database, drop_database, settings_for, source_state
from benchmarks.sections import replace_section
from noctis import migrate
from noctis.deployment import DISPATCHER_FULL_NAME, STANDING_FULL_NAME
from noctis.settings import Settings

RESULTS: Final = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- trigger:begin -->", "<!-- trigger:end -->"
WORKER_TYPES: Final = ("process", "noctis")
PHASES: Final = {
    "api": "API (POST to Scheduled)",
    "poll": "Scheduled to Pending (worker poll)",
    "start": "Pending to Running (process start)",
    "flow": "Running to notification (the flow)",
    "tail": "notification to Completed",
}
EXIT_TIMEOUT: Final = 60.0  # a completed run's process flushes its logs and events, then exits


@dataclass
class Run:
    """One triggered flow run."""

    worker: str
    round: int
    index: int  # 0: the warm-up
    run_id: str
    latency_s: float
    phases: dict[str, float]
    states: list[tuple[str, float]]  # (state name, seconds after the trigger)


@dataclass
class Result:
    rounds: int
    triggers: int
    command: str
    started_at: str
    finished_at: str = ""
    source: str = ""
    postgis: str = ""
    schedules_paused: bool = True
    prefect_db: str = "postgresql"
    load_start: list[float] = field(default_factory=list)
    load_end: list[float] = field(default_factory=list)
    worker_registered_s: dict[str, list[float]] = field(default_factory=dict)
    worker_ready_s: dict[str, list[float]] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)

    def latencies(self, worker: str, *, round_: int | None = None) -> list[float]:
        return [
            r.latency_s
            for r in self.runs
            if r.worker == worker and r.index > 0 and round_ in (None, r.round)
        ]

    def warmups(self, worker: str) -> list[float]:
        return [r.latency_s for r in self.runs if r.worker == worker and r.index == 0]

    def phase(self, worker: str, name: str) -> list[float]:
        return [
            r.phases[name]
            for r in self.runs
            if r.worker == worker and r.index > 0 and name in r.phases
        ]

    def ratio(self) -> float:
        """noctis / process, the medians of the timed runs."""
        return statistics.median(self.latencies("noctis")) / statistics.median(
            self.latencies("process")
        )

    def summary(self) -> dict[str, Any]:
        workers: dict[str, Any] = {}
        for worker in WORKER_TYPES:
            latencies = self.latencies(worker)
            workers[worker] = {
                "timed_runs": len(latencies),
                "latency_median_s": statistics.median(latencies),
                "latency_p90_s": p90(latencies),
                "latency_min_s": min(latencies),
                "latency_max_s": max(latencies),
                "warmup_latency_s": self.warmups(worker),
                "worker_registered_s": self.worker_registered_s[worker],
                "worker_ready_s": self.worker_ready_s[worker],
                "worker_registered_median_s": statistics.median(self.worker_registered_s[worker]),
                "worker_ready_median_s": statistics.median(self.worker_ready_s[worker]),
                "phase_median_s": {
                    name: statistics.median(values)
                    for name in PHASES
                    if (values := self.phase(worker, name))
                },
            }
        return {"workers": workers, "ratio_noctis_to_process": self.ratio()}


def p90(values: list[float]) -> float:
    """The nearest-rank 90th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _log(message: str) -> None:
    print(f"[trigger] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the stack ----


@contextlib.contextmanager
def atlas(server_url: str | None) -> Iterator[tuple[Settings, str, URL]]:
    """A migrated Atlas database on the given server or the tests' PostGIS (dropped after);
    also the server's admin URL."""
    where: contextlib.AbstractContextManager[tuple[URL, str]]
    if server_url:
        given = make_url(server_url).set(drivername="postgresql+asyncpg")
        where = contextlib.nullcontext((given, "the given server URL"))
    else:
        where = postgis_server()
    with where as (admin, origin), scratch_database(admin, "trigger_bench") as url:
        settings = settings_for(url)
        migrate.upgrade(settings)
        yield settings, origin, admin


@contextlib.contextmanager
def scratch_database(admin: URL, prefix: str) -> Iterator[URL]:
    """A new empty database on the server, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(admin, name))
    try:
        yield url
    finally:
        asyncio.run(drop_database(admin, name))


@contextlib.contextmanager
def prefect_database(admin: URL | None, home: Path) -> Iterator[str]:
    """Prefect's database: PostgreSQL on the benchmark's server, as compose runs it, or SQLite
    (``admin`` None), as the e2e tests do. Prefect on SQLite answers 503 while another write
    holds the file, and its client then waits about 2 s before it retries: seconds that a run
    on PostgreSQL does not pay."""
    if admin is None:
        yield f"sqlite+aiosqlite:///{home / 'prefect.db'}"
        return
    with scratch_database(admin, "prefect_bench") as url:
        yield url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@dataclass
class Stack:
    server: PrefectServer
    settings: Settings
    augur: AugurStub
    workdir: Path

    def start_worker(self, worker_type: str, name: str) -> tuple[Child, float, float]:
        """The ``start_worker`` fixture's body, then until the worker polls for runs: the
        worker, its seconds until registered with the pool and until ready."""
        argv = [
            *(str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", worker_type),
            *("--name", name, "--limit", "4"),
        ]
        env = worker_env(self.server, self.settings, self.augur)
        started = time.monotonic()
        child = Child.start(name, argv, env, self.workdir)
        try:
            _wait_for_worker(self.server, child, name)
            registered = time.monotonic() - started
            _wait_for_ready(child, name)
        except BaseException:
            child.stop()
            raise
        return child, registered, time.monotonic() - started


def _wait_for_ready(child: Child, name: str) -> None:
    """Until the worker has set up and started polling (Prefect prints ``Worker 'NAME'
    started!`` then). It registers with the pool before that, at the start of its set-up:
    the Noctis worker preloads its forkserver after registering."""
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while f"Worker {name!r} started!" not in child.output():
        if child.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker {name} did not start:\n{child.output()[-5000:]}")
        time.sleep(0.1)


def _pause_schedules(api: httpx.Client) -> None:
    """Pause the dispatcher's and the standing matcher's schedules; Prefect deletes the runs
    its scheduler had created already."""
    for full_name in (DISPATCHER_FULL_NAME, STANDING_FULL_NAME):
        found = api.get(f"/deployments/name/{full_name}")
        found.raise_for_status()
        paused = api.post(f"/deployments/{found.json()['id']}/pause_deployment")
        paused.raise_for_status()


# ------------------------------------------------------------------- one run ----


def _flow_run_processes(worker: Child) -> list[Proc]:
    """The worker's live flow-run processes: ``python -m prefect.engine`` or forked ones."""
    found = list(worker.forked_runs())
    for proc in _descendants(worker.process.pid):
        with contextlib.suppress(OSError):
            if b"prefect.engine" in Path(f"/proc/{proc[0]}/cmdline").read_bytes().split(b"\0"):
                found.append(proc)  # an exact argument: the forkserver names it in a -c string
    return found


def _wait_for_exit(worker: Child) -> None:
    deadline = time.monotonic() + EXIT_TIMEOUT
    while _flow_run_processes(worker):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{worker.name}: a completed run's process did not exit")
        time.sleep(0.1)


def _states(api: httpx.Client, run_id: str) -> list[tuple[str, str, float]]:
    """The run's states in order: (type, name, epoch seconds)."""
    response = api.get("/flow_run_states/", params={"flow_run_id": run_id})
    response.raise_for_status()
    states = sorted(response.json(), key=lambda state: state["timestamp"])
    return [
        (s["type"], s["name"], datetime.fromisoformat(s["timestamp"]).timestamp()) for s in states
    ]


def _phases(states: list[tuple[str, str, float]], wall: float, arrived: float) -> dict[str, float]:
    """Seconds per phase, from the first state of each type (``wall``: the trigger,
    ``arrived``: the notification, both ``time.time()``)."""
    at: dict[str, float] = {}
    for kind, _, stamp in states:
        at.setdefault(kind, stamp)
    marks = [
        ("api", wall, at.get("SCHEDULED")),
        ("poll", at.get("SCHEDULED"), at.get("PENDING")),
        ("start", at.get("PENDING"), at.get("RUNNING")),
        ("flow", at.get("RUNNING"), arrived),
        ("tail", arrived, at.get("COMPLETED")),
    ]
    return {name: b - a for name, a, b in marks if a is not None and b is not None}


def trigger(
    stack: Stack, api: httpx.Client, deployment_id: str, study: tuple[int, int], key: str
) -> tuple[str, float, dict[str, float], list[tuple[str, float]]]:
    """Augur's trigger, and what it saw: (run id, latency, phases, states)."""
    finder, dream = study
    parameters = {"imagery_finder_pk": finder, "dream_pk": dream}
    wall, triggered = time.time(), time.monotonic()
    created = _create_flow_run(api, deployment_id, parameters, key)
    if created.status_code != 201:
        raise RuntimeError(f"create_flow_run: HTTP {created.status_code} {created.text}")
    run_id = str(created.json()["id"])
    notification = _wait_for_notifications(stack.augur, 1, of_run=run_id)[0]
    latency = notification.time - triggered
    run = _wait_for_state(api, run_id, TERMINAL)
    if run["state"]["type"] != "COMPLETED":
        raise RuntimeError(f"run {run_id} ended {run['state']}")
    body = notification.json if isinstance(notification.json, dict) else {}
    if body.get("event") != "imagery-finder-study.completed" or body.get("matched_count") != 3:
        raise RuntimeError(f"run {run_id}: unexpected notification {body}")
    states = _states(api, run_id)
    offsets = [(name, stamp - wall) for _, name, stamp in states]
    return run_id, latency, _phases(states, wall, notification.wall), offsets


# --------------------------------------------------------------------- the run ----


def run(
    rounds: int,
    triggers: int,
    server_url: str | None,
    *,
    command: str,
    keep_schedules: bool = False,
    prefect_db: str = "postgresql",
    log: Callable[[str], None] = _log,
) -> Result:
    result = Result(
        rounds=rounds,
        triggers=triggers,
        command=command,
        started_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        source=source_state(),
        schedules_paused=not keep_schedules,
        prefect_db=prefect_db,
        load_start=list(os.getloadavg()),
        worker_registered_s={worker: [] for worker in WORKER_TYPES},
        worker_ready_s={worker: [] for worker in WORKER_TYPES},
    )
    session = uuid.uuid4().hex[:8]
    with contextlib.ExitStack() as stack_:
        workdir = Path(stack_.enter_context(tempfile.TemporaryDirectory(prefix="noctis-trigger-")))
        settings, result.postgis, admin = stack_.enter_context(atlas(server_url))
        log(f"Atlas on {result.postgis}; starting the Prefect server on {prefect_db}")
        database_url = stack_.enter_context(
            prefect_database(admin if prefect_db == "postgresql" else None, workdir)
        )
        server = stack_.enter_context(running_prefect_server(workdir, database_url))
        augur = stack_.enter_context(AugurStub())
        deployed = noctis_deploy(server, workdir)
        if deployed.returncode != 0:
            raise RuntimeError(f"noctis deploy failed:\n{deployed.stdout}{deployed.stderr}")
        stack = Stack(server, settings, augur, workdir)
        finder, dream, _ = _seed(settings)
        api = stack_.enter_context(server.client())
        if not keep_schedules:
            _pause_schedules(api)
        deployment_id = _deployment_id(api)
        for round_ in range(1, rounds + 1):
            order = WORKER_TYPES if round_ % 2 else WORKER_TYPES[::-1]
            for worker_type in order:
                name = f"bench-{worker_type}-{round_}"
                worker, registered_s, ready_s = stack.start_worker(worker_type, name)
                result.worker_registered_s[worker_type].append(registered_s)
                result.worker_ready_s[worker_type].append(ready_s)
                log(
                    f"round {round_}: {name} registered after {registered_s:.1f} s, ready after "
                    f"{ready_s:.1f} s"
                )
                try:
                    for index in range(triggers + 1):
                        key = f"bench:{session}:{name}:{index}"
                        run_id, latency, phases, states = trigger(
                            stack, api, deployment_id, (finder, dream), key
                        )
                        _wait_for_exit(worker)
                        result.runs.append(
                            Run(worker_type, round_, index, run_id, latency, phases, states)
                        )
                        what = "warm-up" if index == 0 else f"run {index}/{triggers}"
                        shown = ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
                        log(f"  {name} {what}: {latency:.2f} s ({shown})")
                except BaseException:
                    log(f"{name} log (last lines):\n{worker.output()[-4000:]}")
                    raise
                finally:
                    worker.stop()
                if worker_type == "noctis":  # its log outlives it
                    ran = [r for r in result.runs if r.round == round_ and r.worker == worker_type]
                    _check_forked(worker, [r.run_id for r in ran])
    result.load_end = list(os.getloadavg())
    result.finished_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return result


def _check_forked(worker: Child, run_ids: list[str]) -> None:
    """Every run of the Noctis worker was forked (not Prefect's own path)."""
    output = worker.output()
    missing = [r for r in run_ids if f"Flow run {r} forked as process" not in output]
    if missing:
        raise RuntimeError(f"{worker.name} did not fork runs {missing}:\n{output[-3000:]}")


# ------------------------------------------------------------------- report ----


def report(result: Result) -> str:
    summary = result.summary()
    workers = summary["workers"]
    load = " ".join(f"{x:.1f}" for x in result.load_start)
    load_end = " ".join(f"{x:.1f}" for x in result.load_end)
    schedules = (
        "the dispatcher's and the standing matcher's schedules paused"
        if result.schedules_paused
        else "every schedule on (dispatcher and standing passes every minute)"
    )
    prefect_db = (
        "on PostgreSQL, a database of the same server, as compose runs it"
        if result.prefect_db == "postgresql"
        else "on SQLite: its client waits ~2 s after each 503 the file's write lock causes"
    )
    lines = [
        BEGIN,
        "## Trigger to Augur notification: Prefect's process worker and the Noctis worker"
        " (`benchmarks/trigger.py`)",
        "",
        f"`{result.command}`, {result.started_at} to {result.finished_at}; {result.source};"
        f" Prefect {prefect.__version__}; {os.cpu_count()} CPUs; load average {load} at the"
        f" start, {load_end} at the end. One Prefect server ({prefect_db}), one `noctis deploy`"
        f" ({schedules}), one Atlas database ({result.postgis}), a loopback Augur. Each round"
        " starts each worker type in turn (process then noctis, the next round the other way"
        " round) with the e2e environment (polls every 1 s, prefetch 1 s), waits until it is"
        " ready, triggers one warm-up run, then"
        f" {result.triggers} timed runs one after another (each once the previous run's process"
        " has exited), and stops it. Latency: from the POST of `create_flow_run` to Augur"
        " receiving that run's notification; the study is a rerun (5 items, 3 match). Worker"
        " registered / ready: seconds from its process' start to its registration with the pool"
        " / to `Worker 'NAME' started!` (set-up done, polling; the Noctis worker preloads its"
        " forkserver in between), each start.",
        "",
        "| Worker | Timed runs | Median s | p90 s | Min s | Max s | Warm-up runs s"
        " | Worker registered s | Worker ready s |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for worker in WORKER_TYPES:
        w = workers[worker]
        warm = ", ".join(f"{x:.2f}" for x in w["warmup_latency_s"])
        registered = ", ".join(f"{x:.1f}" for x in w["worker_registered_s"])
        ready = ", ".join(f"{x:.1f}" for x in w["worker_ready_s"])
        lines.append(
            f"| {worker} (`--type {worker}`) | {w['timed_runs']} | {w['latency_median_s']:.2f}"
            f" | {w['latency_p90_s']:.2f} | {w['latency_min_s']:.2f} | {w['latency_max_s']:.2f}"
            f" | {warm} | {registered} | {ready} |"
        )
    per_round = []
    for round_ in range(1, result.rounds + 1):
        process, noctis = (result.latencies(w, round_=round_) for w in WORKER_TYPES)
        if process and noctis:
            per_round.append(f"{statistics.median(noctis) / statistics.median(process):.2f}x")
    lines += [
        "",
        f"**noctis / process: {summary['ratio_noctis_to_process']:.2f}x** (median latency, same"
        f" run); per round: {', '.join(per_round)}.",
        "",
        "Where the time goes: median seconds per phase, from the runs' states"
        " (`/flow_run_states/`) and the notification's arrival.",
        "",
        "| Worker | " + " | ".join(PHASES.values()) + " |",
        "|---|" + "---:|" * len(PHASES),
    ]
    medians = {w: workers[w]["phase_median_s"] for w in WORKER_TYPES}
    for worker in WORKER_TYPES:
        cells = [f"{medians[worker][p]:.2f}" if p in medians[worker] else "-" for p in PHASES]
        lines.append(f"| {worker} | " + " | ".join(cells) + " |")
    ratios = [
        f"{medians['noctis'][p] / medians['process'][p]:.2f}x"
        if medians["process"].get(p) and p in medians["noctis"]
        else "-"
        for p in PHASES
    ]
    lines += ["| noctis / process | " + " | ".join(ratios) + " |", "", END]
    return "\n".join(lines) + "\n"


def to_json(result: Result) -> dict[str, Any]:
    return {**dataclasses.asdict(result), **result.summary(), "report": report(result)}


def command_line(args: argparse.Namespace) -> str:
    parts = ["uv run python -m benchmarks.trigger", f"--rounds {args.rounds}"]
    parts.append(f"--triggers {args.triggers}")
    if args.server_url:
        parts.append("--server-url URL")
    if args.keep_schedules:
        parts.append("--keep-schedules")
    if args.prefect_db != "postgresql":
        parts.append(f"--prefect-db {args.prefect_db}")
    if args.json:
        parts.append(f"--json {args.json}")
    if args.write:
        parts.append("--write")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.trigger",
        description="Trigger to Augur notification: Prefect's process worker and the Noctis one.",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (each worker once each)")
    parser.add_argument("--triggers", type=int, default=5, help="timed triggers per worker start")
    parser.add_argument("--server-url", help="an admin URL of a PostGIS (default: the tests')")
    parser.add_argument(
        "--keep-schedules", action="store_true", help="leave the dispatcher/standing schedules on"
    )
    parser.add_argument(
        "--prefect-db",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="Prefect server's database: PostgreSQL as compose runs it (default), or SQLite",
    )
    parser.add_argument("--json", help="also write the runs and the summary to this file")
    parser.add_argument("--write", action="store_true", help="replace its section of RESULTS.md")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1 or args.triggers < 1:
        parser.error("--rounds and --triggers must be at least 1")
    result = run(
        args.rounds,
        args.triggers,
        args.server_url,
        command=command_line(args),
        keep_schedules=args.keep_schedules,
        prefect_db=args.prefect_db,
    )
    section = report(result)
    print(section)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_json(result), indent=2) + "\n")
    if args.write:
        replace_section(RESULTS, BEGIN, END, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
