"""The Noctis worker (``prefect worker start --type noctis``, :mod:`noctis.worker`) for real.

A Prefect server, ``noctis deploy`` and the worker (conftest.py), Augur on loopback: the
worker forks each flow run from its preloaded forkserver, and Augur must see exactly what it
sees with Prefect's process worker (tests/e2e/test_trigger_like_augur.py): the run's states,
its rows, its notification; a run killed mid-flight is marked Crashed by the worker at once;
a cancelled run ends Cancelled, its process gone.
"""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any

import httpx
import pytest

from noctis.settings import Settings
from tests.e2e.conftest import Child, PrefectServer, StartWorker, _alive
from tests.e2e.test_trigger_like_augur import (
    TERMINAL,
    _check_notification,
    _create_flow_run,
    _deployment_id,
    _lookups,
    _seed,
    _timeline,
    _wait_for_heartbeat,
    _wait_for_notifications,
    _wait_for_state,
)
from tests.support.augur_stub import AugurStub, Reply

pytestmark = pytest.mark.e2e


def _stall_completed(augur: AugurStub, dream: int) -> None:
    """Augur hangs on this dream's ``completed``: the run stays mid-flight, rows committed."""
    augur.script(
        [Reply(stall=120)],
        only=lambda body: (
            isinstance(body, dict)
            and body.get("event") == "imagery-finder-study.completed"
            and body.get("dream_pk") == dream
        ),
    )


def _forked_run(worker: Child, run_id: str, timeout: float = 60) -> tuple[int, str]:
    """The run's process: the worker logs its pid; it must be a forked flow-run process (a
    dispatcher pass the crash automation started may run beside it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := re.search(rf"Flow run {run_id} forked as process (\d+)", worker.output()):
            pid = int(found.group(1))
            [proc] = [p for p in worker.forked_runs() if p[0] == pid]
            return proc
        time.sleep(0.1)
    raise AssertionError(f"no forked flow-run process:\n{worker.output()[-3000:]}")


def _trigger(api: httpx.Client, finder: int, dream: int, key: str) -> str:
    params: dict[str, Any] = {"imagery_finder_pk": finder, "dream_pk": dream}
    created = _create_flow_run(api, _deployment_id(api), params, key)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_a_study_runs_forked_and_augur_is_told(
    prefect_server: PrefectServer,
    start_worker: StartWorker,
    atlas_settings: Settings,
    augur_stub: AugurStub,
) -> None:
    worker = start_worker(worker_type="noctis")
    with prefect_server.client() as api:
        latencies, run_ids = [], []
        finder, dream, matching = _seed(atlas_settings)
        for attempt in range(3):  # the first run and reruns: one forkserver serves them all
            triggered = time.monotonic()
            run_id = _trigger(api, finder, dream, f"noctis-worker-{attempt}")
            run_ids.append(run_id)
            [notification] = _wait_for_notifications(augur_stub, 1, of_run=run_id)
            latencies.append(notification.time - triggered)
            run = _wait_for_state(api, run_id, TERMINAL)
            assert run["state"]["type"] == "COMPLETED", (run["state"], worker.output()[-3000:])
            _check_notification(
                notification,
                atlas_settings,
                run_id=run_id,
                finder=finder,
                dream=dream,
                matched=3,
                new=3 if attempt == 0 else 0,
            )
            assert _lookups(atlas_settings, finder, dream) == matching
            print(f"\nrun {attempt}: {_timeline(api, run_id)}")
        print("trigger-to-notification latencies (Noctis worker, polls every 1 s): "
              + ", ".join(f"{s:.2f} s" for s in latencies))  # fmt: skip
        # The run's last log line reached the server: the child flushed Prefect's queues
        # before multiprocessing's os._exit.
        deadline = time.monotonic() + 30  # the server stores logs in the background
        while True:
            logs = api.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}})
            assert logs.status_code == 200, logs.text
            messages = [entry["message"] for entry in logs.json()]
            if any("Finished in state Completed" in m for m in messages):
                break
            assert time.monotonic() < deadline, messages[-5:]
            time.sleep(0.5)
    # Each run was forked, and its process exits once it has flushed Prefect's queues (a
    # dispatcher pass may run meanwhile: only these runs' processes count).
    pids = set()
    for run_id in run_ids:
        found = re.search(rf"Flow run {run_id} forked as process (\d+)", worker.output())
        assert found, worker.output()[-3000:]
        pids.add(int(found.group(1)))
    deadline = time.monotonic() + 30
    while pids & {pid for pid, _ in worker.forked_runs()}:
        assert time.monotonic() < deadline, "a completed run's process did not exit"
        time.sleep(0.2)
    assert "Preloading the forkserver" in worker.output()


def test_a_run_is_picked_up_when_it_is_scheduled_not_at_the_next_poll(
    prefect_server: PrefectServer,
    start_worker: StartWorker,
    atlas_settings: Settings,
    augur_stub: AugurStub,
) -> None:
    """The worker polls once a minute here; a triggered run still starts within seconds: the
    worker polls on the server's ``prefect.flow-run.Scheduled`` event (:mod:`noctis.pickup`)."""
    worker = start_worker(worker_type="noctis", env={"PREFECT_WORKER_QUERY_SECONDS": "60"})
    deadline = time.monotonic() + 60
    ready = ("Picking up runs of this pool as they are scheduled", "Forkserver ready in")
    while not all(line in worker.output() for line in ready):
        assert time.monotonic() < deadline, worker.output()[-3000:]
        time.sleep(0.1)
    finder, dream, _ = _seed(atlas_settings)
    with prefect_server.client() as api:
        triggered = time.monotonic()
        run_id = _trigger(api, finder, dream, "picked-up-on-event")
        submitted = f"submitting flow run '{run_id}'"
        while submitted not in worker.output():  # the timer's next poll is 40-80 s away
            assert time.monotonic() - triggered < 10, worker.output()[-3000:]
            time.sleep(0.05)
        picked_up = time.monotonic() - triggered
        [notification] = _wait_for_notifications(augur_stub, 1, of_run=run_id)
        run = _wait_for_state(api, run_id, TERMINAL)
        assert run["state"]["type"] == "COMPLETED", (run["state"], worker.output()[-3000:])
    print(f"\nsubmitted {picked_up:.2f} s after the trigger; notified after "
          f"{notification.time - triggered:.2f} s (the worker polls every 60 s)")  # fmt: skip


def test_a_killed_forked_run_is_crashed_by_the_worker_which_runs_the_next(
    prefect_server: PrefectServer,
    start_worker: StartWorker,
    atlas_settings: Settings,
    augur_stub: AugurStub,
) -> None:
    """SIGKILL the forked flow-run process mid-run (as the OOM killer would): the worker
    reports the run Crashed with the exit status at once (no automation window), its forkserver
    lives on, and the next study completes."""
    worker = start_worker(worker_type="noctis")
    finder, dream, matching = _seed(atlas_settings)
    _stall_completed(augur_stub, dream)
    with prefect_server.client() as api:
        run_id = _trigger(api, finder, dream, "noctis-worker-killed")
        _wait_for_notifications(augur_stub, 1, of_run=run_id)  # mid-run: rows committed
        # A fork heartbeats as a fresh interpreter does (the zombie automation needs it when a
        # whole worker dies): the deployment's interval reached Prefect's rebuilt settings.
        _wait_for_heartbeat(api, run_id)
        pid, _ = _forked_run(worker, run_id)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        crashed = _wait_for_state(api, run_id, TERMINAL, timeout=60)
        print(f"\nrun {crashed['state']['type']} {time.monotonic() - killed:.1f} s after the kill")
        assert crashed["state"]["type"] == "CRASHED", crashed["state"]
        assert "status code: -9" in crashed["state"]["message"], crashed["state"]
        assert _lookups(atlas_settings, finder, dream) == matching

        augur_stub.script([])
        next_id = _trigger(api, finder, dream, "noctis-worker-after-kill")  # Augur retries
        done = _wait_for_state(api, next_id, TERMINAL)
        assert done["state"]["type"] == "COMPLETED", (done["state"], worker.output()[-3000:])
        assert _lookups(atlas_settings, finder, dream) == matching


def test_a_cancelled_forked_run_ends_cancelled_and_its_process_is_gone(
    prefect_server: PrefectServer,
    start_worker: StartWorker,
    atlas_settings: Settings,
    augur_stub: AugurStub,
) -> None:
    worker = start_worker(worker_type="noctis")
    finder, dream, _ = _seed(atlas_settings)
    _stall_completed(augur_stub, dream)
    with prefect_server.client() as api:
        run_id = _trigger(api, finder, dream, "noctis-worker-cancelled")
        _wait_for_notifications(augur_stub, 1, of_run=run_id)
        forked = _forked_run(worker, run_id)
        response = api.post(
            f"/flow_runs/{run_id}/set_state",
            json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True},
        )
        assert response.status_code in (200, 201), response.text
        cancelled = _wait_for_state(api, run_id, {"CANCELLED", "CRASHED", "FAILED", "COMPLETED"})
        assert cancelled["state"]["type"] == "CANCELLED", (cancelled["state"], worker.output())
        deadline = time.monotonic() + 30
        while _alive(forked) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(forked), "the cancelled run's process still runs"
    augur_stub.script([])
