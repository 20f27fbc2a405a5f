"""A process worker whose flow runs do not pay for a fresh interpreter.

Prefect's process worker starts every flow run as ``python -m prefect.engine``: a new
interpreter that imports Prefect, SQLAlchemy, GeoAlchemy2 and the flow's module before it
does anything, 6.1-6.8 s on the 2-core machine (benchmarks/RESULTS.md). This worker is
Prefect's process worker with one change: a flow run is a child of a **forkserver**
(:mod:`multiprocessing`) that imported those modules once, when the worker started. The child
takes the run's environment, working directory and control channel exactly as
``python -m prefect.engine`` would get them, then runs that same module, so the run's states,
logs, heartbeats, cancellation and crash handling are Prefect's own.

Start it with Prefect's CLI (Noctis registers the type through the ``prefect.collections``
entry point)::

    prefect worker start --pool noctis-pool --type noctis --limit 4 --with-healthcheck

It picks a run up the moment the server announces it scheduled (:mod:`noctis.pickup`), as
well as on Prefect's poll timer.

It serves ``process`` work pools: the pool, its job template and the deployments are
unchanged, and ``--type process`` (Prefect's own worker) can take its place at any time. A
deployment whose job variables set ``command`` runs that command, as on Prefect's worker.

What differs from a fresh interpreter, by design:

- Modules are imported once, with the worker's environment. Noctis reads its settings when a
  run starts, never at import; Prefect's settings and logging are rebuilt from the run's
  environment in the child. A setting read at import time by some other module keeps the
  worker's value.
- The child's ``ps`` line is the forkserver's; its name (``/proc/PID/comm``) is
  ``noctis-flowrun``.
- If the forkserver dies (it is a plain process: the OOM killer can pick it), the next run
  starts a new one, paying the imports once more. A run whose forkserver died is waited for by
  its process id; its exit code is then unknown, reported as 255, as a lost process is.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.context
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
from prefect.flows import load_flow_from_flow_run
from prefect.runner._flow_run_executor import FlowRunExecutionResult, FlowRunExecutorContext
from prefect.runner._process_manager import ProcessHandle
from prefect.settings import get_current_settings
from prefect.utilities.processutils import sanitize_subprocess_env
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from noctis.pickup import pick_up_scheduled_runs

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._control_channel import ControlChannel

WORKER_TYPE = "noctis"

#: What the forkserver imports before it forks any run: Prefect's engine, and the module of
#: every flow ``noctis deploy`` registers (tests/flows/test_worker.py keeps this in step).
PRELOAD = (
    "noctis.worker",
    "prefect.engine",
    "prefect.flow_engine",
    "noctis.flows.imagery_finder_study",
    "noctis.flows.outbox_dispatcher",
    "noctis.flows.standing",
)

_PROCESS_NAME = b"noctis-flowrun"  # /proc/PID/comm holds 15 bytes


def forkserver_context() -> multiprocessing.context.ForkServerContext:
    """The forkserver every run of this process is forked from, preloading :data:`PRELOAD`."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    return context


def warm_forkserver(context: multiprocessing.context.ForkServerContext) -> None:
    """Start the forkserver and wait until it has imported :data:`PRELOAD` (one empty child)."""
    child = context.Process(target=_nothing, name="noctis-forkserver-warmup")
    child.start()
    child.join()


def _nothing() -> None:
    return None


def run_flow_run(env: dict[str, str], cwd: str) -> None:
    """The child: become ``python -m prefect.engine`` with the run's environment and folder."""
    import gc
    import runpy
    import sys

    # What the forkserver imported lives as long as this process: out of the collector's reach,
    # so that no collection walks it (and writes to every inherited page, copying each).
    gc.freeze()

    from prefect.context import refresh_global_settings_context
    from prefect.logging.configuration import setup_logging

    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    _name_process()
    refresh_global_settings_context()  # Prefect's settings from this run's environment
    setup_logging(incremental=False)
    sys.argv = ["prefect.engine"]  # the run's id comes from PREFECT__FLOW_RUN_ID
    try:
        with warnings.catch_warnings():
            # runpy warns that prefect.engine is imported already (Prefect imports it): its
            # __main__ block runs once more as __main__, which is what `python -m` does.
            warnings.filterwarnings("ignore", r".*prefect\.engine.*", RuntimeWarning)
            runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    finally:
        # multiprocessing ends a child with os._exit: flush Prefect's log and event queues
        # (registered with atexit) as an interpreter's exit would.
        import atexit

        atexit._run_exitfuncs()


def _name_process() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, _PROCESS_NAME, 0, 0, 0)  # PR_SET_NAME


class ForkserverStarter:
    """Starts a flow run as a forkserver child (the starter protocol of Prefect's runner)."""

    def __init__(
        self,
        *,
        context: multiprocessing.context.ForkServerContext,
        cwd: Path,
        env: dict[str, str | None],
        control_channel: ControlChannel | None,
    ) -> None:
        self._context = context
        self._cwd = cwd
        self._env = env
        self._control_channel = control_channel

    def _environment(self, flow_run: FlowRun, control: dict[str, str]) -> dict[str, str]:
        # As EngineCommandStarter builds the environment of `python -m prefect.engine`.
        env: dict[str, str | None] = {**os.environ, **self._env}
        env.update(get_current_settings().to_environment_variables(exclude_unset=True))
        env.update(
            {
                "PREFECT__FLOW_RUN_ID": str(flow_run.id),
                "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
                "PREFECT__DEPLOYMENT_NAME": self._env.get("PREFECT__DEPLOYMENT_NAME"),
                **control,
            }
        )
        return {k: v for k, v in sanitize_subprocess_env(env).items() if v is not None}

    async def start(
        self,
        flow_run: FlowRun,
        task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        control: dict[str, str] = {}
        registered = False
        if self._control_channel is not None:
            with contextlib.suppress(RuntimeError):  # no loopback listener: kill-only cancels
                port, token = self._control_channel.register(flow_run.id)
                control = {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
                registered = True
        handed_off = False
        try:
            process = self._context.Process(
                target=run_flow_run,
                args=(self._environment(flow_run, control), str(self._cwd)),
                name=f"flow-run-{flow_run.id}",
            )
            await anyio.to_thread.run_sync(process.start)
            task_status.started(ProcessHandle(cast(Any, process)))
            handed_off = True
            await _wait(process)
        except BaseException:
            if registered and not handed_off and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise


async def _wait(process: multiprocessing.process.BaseProcess) -> None:
    """Until the child has exited; cancellable, unlike ``join``."""
    # The forkserver writes the child's exit status on this pipe, or closes it as it dies.
    await anyio.wait_readable(process.sentinel)
    if process.exitcode == 255 and process.pid is not None:
        # Closed without a status: the forkserver died, and the run may live on. Not our
        # child, so no waitpid: a pidfd is readable once the process has ended.
        try:
            pidfd = os.pidfd_open(process.pid)
        except ProcessLookupError:
            return
        try:
            await anyio.wait_readable(pidfd)
        finally:
            os.close(pidfd)


class NoctisWorker(ProcessWorker):
    """Prefect's process worker, its runs forked from a preloaded forkserver."""

    type = "process"  # it serves process pools, interchangeably with Prefect's worker
    _description = "Process worker whose flow runs are forked from a preloaded interpreter."
    _display_name = "Noctis process"

    @classmethod
    def __dispatch_key__(cls) -> str:
        return WORKER_TYPE

    async def setup(self) -> None:
        await super().setup()
        self._forkserver = forkserver_context()
        self._logger.info("Preloading the forkserver: %s", ", ".join(PRELOAD))
        # In the background: the worker polls meanwhile, and a run that comes before the
        # forkserver is ready waits for it in its own start.
        threading.Thread(target=self._warm, name="noctis-forkserver", daemon=True).start()
        # A run is picked up when the server announces it scheduled, not at the next poll.
        self._pickup = asyncio.get_running_loop().create_task(
            pick_up_scheduled_runs(self, self._logger)
        )

    async def teardown(self, *exc_info: Any) -> None:
        pickup = getattr(self, "_pickup", None)
        if pickup is not None:
            pickup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pickup
        await super().teardown(*exc_info)

    def _warm(self) -> None:
        started = time.monotonic()
        try:
            warm_forkserver(self._forkserver)
        except Exception:  # each run's start tries again, and reports its own failure
            self._logger.exception("The forkserver did not start")
        else:
            self._logger.info("Forkserver ready in %.1f s", time.monotonic() - started)

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        if configuration._command_configured:  # an explicit command: Prefect's own path
            return await super().run(flow_run, configuration, task_status)
        status = task_status if task_status is not None else anyio.TASK_STATUS_IGNORED
        folder = (
            tempfile.TemporaryDirectory(suffix="prefect")
            if not configuration.working_dir
            else contextlib.nullcontext(str(configuration.working_dir))
        )
        execution: FlowRunExecutionResult | None = None
        with folder as cwd, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            async with FlowRunExecutorContext() as ctx:
                starter = ForkserverStarter(
                    context=self._forkserver,
                    cwd=Path(cwd),  # absolute: a temporary folder, or the validated working_dir
                    env=configuration.env,
                    control_channel=ctx.control_channel,
                )
                executor = ctx.create_executor(
                    flow_run,
                    starter,
                    resolve_flow=load_flow_from_flow_run,
                    propose_submitting=False,
                )

                async def execute(
                    *, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
                ) -> None:
                    nonlocal execution
                    execution = await executor.submit(task_status=task_status)

                async with anyio.create_task_group() as group:
                    handle = await group.start(execute)
                    if handle.pid is None:
                        raise RuntimeError("Flow run process has no PID")
                    self._logger.info("Flow run %s forked as process %d", flow_run.id, handle.pid)
                    status.started(handle.pid)
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(
            status_code=execution.status_code, identifier=str(execution.handle.pid)
        )
