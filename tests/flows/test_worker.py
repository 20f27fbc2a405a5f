"""The Noctis worker's parts (noctis.worker).

Its runs on a real server: tests/e2e/test_noctis_worker.py.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from prefect.cli._worker_utils import _load_worker_class

from noctis import worker
from noctis.flows.imagery_finder_study import imagery_finder_study
from noctis.flows.outbox_dispatcher import outbox_dispatcher
from noctis.flows.standing import close_study, standing_match


def test_prefect_finds_the_noctis_worker_type_and_it_serves_process_pools() -> None:
    [entry] = [e for e in entry_points(group="prefect.collections") if e.name == "noctis"]
    assert entry.value == "noctis.worker"
    found = _load_worker_class("noctis")
    assert found is worker.NoctisWorker
    assert found.type == "process"  # the pool, its template and deployments are unchanged
    assert _load_worker_class("process") is not worker.NoctisWorker  # Prefect's own stays


def test_the_forkserver_preloads_the_module_of_every_deployed_flow() -> None:
    deployed: list[Any] = [imagery_finder_study, outbox_dispatcher, standing_match, close_study]
    modules = {flow.fn.__module__ for flow in deployed}
    assert modules <= set(worker.PRELOAD), modules - set(worker.PRELOAD)
    assert "noctis.worker" in worker.PRELOAD  # the child's entry point itself


def test_a_run_gets_the_environment_python_m_prefect_engine_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOCTIS_FROM_WORKER", "worker")
    monkeypatch.setenv("NOCTIS_OVERRIDDEN", "worker")
    starter = worker.ForkserverStarter(
        context=multiprocessing.get_context("forkserver"),
        cwd=Path("/tmp"),
        env={"NOCTIS_OVERRIDDEN": "job", "NOCTIS_DROPPED": None, "PREFECT__DEPLOYMENT_NAME": "d"},
        control_channel=None,
    )
    run_id = uuid.uuid4()
    env = starter._environment(
        SimpleNamespace(id=run_id),  # type: ignore[arg-type]
        {"PREFECT__CONTROL_PORT": "1234", "PREFECT__CONTROL_TOKEN": "t"},
    )
    assert env["PREFECT__FLOW_RUN_ID"] == str(run_id)
    assert env["NOCTIS_FROM_WORKER"] == "worker"
    assert env["NOCTIS_OVERRIDDEN"] == "job"  # the job's variables win over the worker's
    assert "NOCTIS_DROPPED" not in env
    assert env["PREFECT__DEPLOYMENT_NAME"] == "d"
    assert env["PREFECT__CONTROL_PORT"] == "1234"
    assert env["PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS"] == "false"
    assert all(isinstance(v, str) for v in env.values())


def test_a_run_whose_forkserver_died_is_waited_for_by_its_pid() -> None:
    """The forkserver's pipe closed (exit code 255) while the run lives on: the worker waits
    for the run's process itself, not for the pipe."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    closed, still_open = os.pipe()  # the forkserver's pipe, closed without a status
    os.close(still_open)
    lost: Any = SimpleNamespace(exitcode=255, pid=child.pid, sentinel=closed)
    started = time.monotonic()
    waited: list[float] = []

    async def wait() -> None:
        await worker._wait(lost)
        waited.append(time.monotonic() - started)

    async def wait_and_reap() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.to_thread.run_sync(child.wait)  # reaped here, as init would reap it

    try:
        anyio.run(wait_and_reap)
    finally:
        os.close(closed)
    assert child.returncode == 0
    assert waited[0] >= 1.4  # not at once: only when the process was gone
