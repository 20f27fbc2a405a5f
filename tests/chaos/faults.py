"""The fault driver: two threads injecting faults at random points until told to stop.

The process and database thread runs a fault every ``gap`` seconds (each round a shuffled
pass over every kind, so each kind recurs however short the run):

- ``kill-worker``: SIGKILL the worker and every flow-run process it started, when it runs some
  (at most ``worker_kills`` times); a new worker starts a few seconds later (the dead runs are
  left to the automations);
- ``kill-flow-run``: SIGKILL one flow-run process (the worker reports it Crashed);
- ``kill-after-commit``: SIGKILL a flow-run process whose ``completed`` is committed but not
  yet delivered (its outbox row pending, never tried): between COMMIT and delivery;
- ``terminate-backend``: ``pg_terminate_backend`` on one of Noctis' Atlas connections;
- ``terminate-in-commit``: commits in Atlas wait for a standby that does not exist (as
  tests/flows/test_outbox_faults.py does), and the first Noctis backend caught waiting inside
  COMMIT is terminated: its transaction has landed, its client never hears so.

The Augur thread alternates healthy spells and fault episodes: 500, 429 with Retry-After,
answers stalled past the client's timeout, or no Augur at all (connections refused).
``hits`` counts the faults that struck something; ``tries`` every attempt.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from tests.chaos.stack import Stack
from tests.support.augur_stub import Reply

KINDS = ("kill-worker", "kill-flow-run", "kill-after-commit", "terminate-backend",
         "terminate-in-commit")  # fmt: skip
AUGUR_FAULTS = ("500", "429", "timeout", "refused")


@dataclass(frozen=True)
class Pace:
    gap: tuple[float, float]  # seconds between two process/database faults
    augur_up: tuple[float, float]  # a healthy spell of Augur
    augur_down: tuple[float, float]  # a fault episode of Augur
    augur_timeout: float  # NOCTIS_AUGUR_TIMEOUT of the worker: a stall past it times out
    worker_kills: int = 1  # at most: a worker takes a minute to start on a loaded machine


class Driver:
    def __init__(
        self,
        stack: Stack,
        pace: Pace,
        rng: random.Random,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.stack, self.pace, self.rng = stack, pace, rng
        self.say = say  # each fault as it lands, and a driver error at once
        self.tries: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()
        self.augur_seconds: Counter[str] = Counter()
        self.log: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._guard(self._processes), name="chaos-processes"),
            threading.Thread(target=self._guard(self._augur), name="chaos-augur"),
        ]
        self.errors: list[BaseException] = []

    def __enter__(self) -> Driver:
        with psycopg.connect(self.stack.atlas_dsn, autocommit=True) as conn:
            # Atlas' commits will wait for synchronous standbys when some are named; every
            # other database of the cluster (Prefect's) keeps committing locally.
            conn.execute(f'ALTER DATABASE "{self.stack.atlas.atlas_url.database}" '
                         "SET synchronous_commit = on")  # fmt: skip
            conn.execute("ALTER SYSTEM SET synchronous_commit = 'local'")
            conn.execute("SELECT pg_reload_conf()")
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop injecting; leave Augur up, a worker running, commits local."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        self._ghost_standby(False)
        with psycopg.connect(self.stack.atlas_dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET synchronous_commit")
            conn.execute("SELECT pg_reload_conf()")
        augur = self.stack.augur
        augur.fallback(Reply())
        if not augur.running:
            augur.start()

    def note(self, what: str) -> None:
        with self._lock:
            self.log.append(f"{time.strftime('%H:%M:%S')} {what}")
        if self.say is not None:
            self.say(what)

    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                body()
            except BaseException as e:  # reported by the run, never lost in a thread
                self.errors.append(e)
                trace = "".join(traceback.format_exception(e)).rstrip()
                self.note(f"driver error: {type(e).__name__}: {e}\n{trace}")

        return run

    def _sleep(self, bounds: tuple[float, float]) -> bool:
        """Sleep a random time within ``bounds``; False once stopped."""
        return not self._stop.wait(self.rng.uniform(*bounds))

    # ------------------------------------------------------------ processes, Atlas

    def _processes(self) -> None:
        while True:
            kinds = list(KINDS)
            self.rng.shuffle(kinds)
            for kind in kinds:
                if not self._sleep(self.pace.gap):
                    return
                self.tries[kind] += 1
                if getattr(self, "_" + kind.replace("-", "_"))():
                    self.hits[kind] += 1
                    self.note(kind)

    def _kill_worker(self) -> bool:
        """Only while it runs flows (a worker still starting up would die for nothing)."""
        if self.hits["kill-worker"] >= self.pace.worker_kills:
            return False
        if not self.stack.flow_run_processes():
            return False
        self.stack.kill_worker()
        self._stop.wait(self.rng.uniform(1, 5))
        self.stack.start_worker()
        return True

    def _kill(self, pids: list[int]) -> bool:
        if not pids:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.rng.choice(pids), signal.SIGKILL)
            return True
        return False

    def _kill_flow_run(self) -> bool:
        return self._kill(list(self.stack.flow_run_processes().values()))

    def _kill_after_commit(self) -> bool:
        deadline = time.monotonic() + 15
        with psycopg.connect(self.stack.atlas_dsn, autocommit=True) as conn:
            while time.monotonic() < deadline and not self._stop.is_set():
                committed = {
                    row[0]
                    for row in conn.execute(
                        "SELECT flow_run_id FROM notification_outbox WHERE state = 'pending' "
                        "AND attempts = 0 AND event = 'imagery-finder-study.completed'"
                    )
                }
                alive = self.stack.flow_run_processes()
                if pids := [pid for run, pid in alive.items() if run in committed]:
                    return self._kill(pids)
                time.sleep(0.02)
        return False

    def _terminate_backend(self) -> bool:
        with psycopg.connect(self.stack.atlas_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'noctis' AND datname = current_database() "
                "ORDER BY random() LIMIT 1"
            ).fetchone()
        return bool(row and row[0])

    def _ghost_standby(self, on: bool) -> None:
        with psycopg.connect(self.stack.atlas_dsn, autocommit=True) as conn:
            if on:
                conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'chaos_ghost'")
            else:
                conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
            conn.execute("SELECT pg_reload_conf()")

    def _terminate_in_commit(self) -> bool:
        self._ghost_standby(True)
        try:
            deadline = time.monotonic() + 10
            with psycopg.connect(self.stack.atlas_dsn, autocommit=True) as conn:
                while time.monotonic() < deadline and not self._stop.is_set():
                    row = conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'noctis' AND datname = current_database() "
                        "AND wait_event = 'SyncRep' AND query ILIKE 'COMMIT%' LIMIT 1"
                    ).fetchone()
                    if row and row[0]:
                        return True
                    time.sleep(0.02)
            return False
        finally:
            self._ghost_standby(False)  # the other waiting commits complete

    # ------------------------------------------------------------------ Augur

    def _augur(self) -> None:
        augur = self.stack.augur
        while self._sleep(self.pace.augur_up):
            kind = self.rng.choice(AUGUR_FAULTS)
            self.tries[f"augur-{kind}"] += 1
            self.hits[f"augur-{kind}"] += 1
            began = time.monotonic()
            self.note(f"augur-{kind} begins")
            if kind == "refused":
                augur.stop()
            else:
                augur.fallback({
                    "500": Reply(500),
                    "429": Reply(429, headers={"Retry-After": "2"}),
                    "timeout": Reply(stall=self.pace.augur_timeout + 1),
                }[kind])  # fmt: skip
            self._sleep(self.pace.augur_down)
            if kind == "refused":
                augur.start()
            augur.fallback(Reply())
            self.augur_seconds[kind] += round(time.monotonic() - began)
            self.note(f"augur-{kind} ends")
