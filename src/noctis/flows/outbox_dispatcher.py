"""The ``noctis-outbox-dispatcher`` flow: deliver what the study runs left in the outbox.

``noctis deploy`` registers it as ``noctis-outbox-dispatcher/default`` on the work pool, on a
schedule of ``NOCTIS_OUTBOX_DISPATCH_SECONDS``, and an automation runs it at once when a study
run ends Crashed or Cancelled. ``noctis outbox deliver`` runs one pass in the shell. A pass
(:func:`dispatch_once`):

1. announces the study runs that started (or never started) and ended Crashed, Cancelled or
   Failed within the look-back (:func:`noctis.outbox.look_back`: 90% of the retention, so a
   run's delivered ``completed`` is never pruned before the run leaves it) without an outcome in
   the outbox (read from the Prefect API): a ``failed`` each, through the outbox
   (:func:`noctis.outbox.announce_ended_runs`);
2. delivers every pending notification (:func:`noctis.outbox.dispatch`), then looks for ended
   runs once more (one may have crashed meanwhile) and delivers what that found;
3. deletes delivered rows older than ``NOCTIS_RETENTION_HOURS``, and this machine's Prefect
   results as old (:mod:`noctis.flows.housekeeping`).

A scheduled pass that finds Augur down does not end there: it tries again every
:data:`PROBE_EVERY` until Augur takes a notification, for up to :data:`LINGER_SHARE` of the
period. While Augur is down a pass is nearly always alive, so what waits is delivered a few
seconds after Augur returns, not at the next pass (which would also pay a flow-run process's
start-up): well within one period.

The deployment runs one pass at a time (a pass due while another runs is cancelled). Passes
may still overlap (``noctis outbox deliver``, a second deployment): rows are taken ``FOR UPDATE
SKIP LOCKED`` and a run's ``failed`` is written once, so they never send one notification twice
at once. Every pass does its work, however late it starts: a late pass that skipped itself held
the deployment's one slot for nothing, and a backlog of them (a worker down, a loaded machine)
starved the dispatcher for as long as it lasted (found by the full chaos run).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import get_current_settings

from noctis import outbox
from noctis.flows.housekeeping import prune_local_results
from noctis.flows.imagery_finder_study import FLOW_NAME as STUDY_FLOW
from noctis.outbox import DispatchReport, EndedRun
from noctis.runtime import open_runtime
from noctis.settings import Settings, get_settings

FLOW_NAME = "noctis-outbox-dispatcher"
ENDED_BADLY = [StateType.CRASHED, StateType.CANCELLED, StateType.FAILED]
PAGE = 200


async def ended_runs(since: datetime) -> list[EndedRun]:
    """The study's deployment runs that ended Crashed, Cancelled or Failed after ``since``.

    Runs without a deployment (``noctis run``, tests) are not watched: their caller sees them
    end. Runs whose parameters are not two positive ids are skipped (the server refuses those).
    """
    found: list[EndedRun] = []
    runs_filter = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ENDED_BADLY)),
        end_time=FlowRunFilterEndTime(after_=since),
    )
    async with get_client() as client:
        offset = 0
        while True:
            page = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[STUDY_FLOW])),
                flow_run_filter=runs_filter,
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(is_null_=False)),
                sort=FlowRunSort.END_TIME_DESC,
                limit=PAGE,
                offset=offset,
            )
            found += [run for run in map(_ended, page) if run is not None]
            if len(page) < PAGE:
                return found
            offset += PAGE


def _ended(run: FlowRun) -> EndedRun | None:
    finder, dream = run.parameters.get("imagery_finder_pk"), run.parameters.get("dream_pk")
    if not (isinstance(finder, int) and isinstance(dream, int) and finder > 0 and dream > 0):
        return None
    state = run.state
    return EndedRun(
        flow_run_id=str(run.id),
        name=run.name,
        imagery_finder_pk=finder,
        dream_pk=dream,
        state=(state.name if state is not None else None) or "ended",
        message=state.message if state is not None else None,
        started_at=run.start_time,
    )


def sender() -> str:
    return f"dispatcher {socket.gethostname()}:{os.getpid()}"


PROBE_EVERY = timedelta(seconds=5)
LINGER_SHARE = 0.8  # of the period: the pass ends before the next one is due


async def dispatch_once(
    settings: Settings, *, watch_runs: bool = True, linger: timedelta | None = None
) -> DispatchReport:
    """One dispatcher pass (above); ``watch_runs`` False skips the Prefect API (no server).

    With ``linger``, a pass that Augur stopped tries again every :data:`PROBE_EVERY` until
    Augur takes what waits or ``linger`` has passed since the pass began; when Augur asked to
    wait (``Retry-After``), not before that time, and not at all if it lies beyond."""
    report = DispatchReport()
    began = asyncio.get_running_loop().time()
    async with open_runtime(settings) as runtime:
        if runtime.augur is None:
            logging.getLogger(__name__).warning(
                "NOCTIS_AUGUR_API_URL is empty: the outbox is not delivered"
            )
            return report
        since = datetime.now(UTC) - outbox.look_back(settings.retention)

        async def announce() -> int:
            try:
                ended = await ended_runs(since)
            except Exception as e:  # Prefect's API down: deliver anyway, announce next pass
                report.runs_unread = f"{type(e).__name__}: {e}"
                logging.getLogger(__name__).warning(
                    "Could not read the ended study runs from the Prefect API (%s): the outbox"
                    " is delivered, dead runs are announced by a later pass",
                    report.runs_unread,
                )
                return 0
            return len(
                await outbox.announce_ended_runs(runtime.unit_of_work, ended, started_after=since)
            )

        async def deliver() -> None:
            await outbox.dispatch(
                runtime.unit_of_work,
                runtime.augur,  # type: ignore[arg-type]
                by=sender(),
                give_up_after=settings.outbox_give_up_after,
                report=report,
            )

        if watch_runs:
            report.announced += await announce()
        await deliver()
        while report.stopped is not None and linger is not None:
            left = began + linger.total_seconds() - asyncio.get_running_loop().time()
            if left <= 0:
                break
            pause = PROBE_EVERY.total_seconds()
            if report.waiting_until is not None:  # Augur named a time: no probe before it
                wait = (report.waiting_until - datetime.now(UTC)).total_seconds()
                if wait > left:
                    break
                pause = max(pause, wait)
            await asyncio.sleep(min(pause, left))
            report.stopped = None  # try again: Augur may be back
            await deliver()
        if watch_runs and report.stopped is None and (late := await announce()):
            report.announced += late  # a run ended during the pass
            await deliver()
        report.pruned = await outbox.prune(runtime.unit_of_work, older_than=settings.retention)
    prune_local_results(settings.retention)
    return report


@flow(name=FLOW_NAME, log_prints=False)
async def outbox_dispatcher() -> DispatchReport:
    """Deliver Augur's pending notifications and announce the study runs that died."""
    settings = get_settings()
    logger = get_run_logger()
    period = timedelta(seconds=settings.noctis_outbox_dispatch_seconds)
    report = await dispatch_once(settings, watch_runs=True, linger=period * LINGER_SHARE)
    logger.info(
        "Outbox: %d delivered, %d dead, %d failed run(s) announced, %d pruned%s",
        report.delivered,
        report.dead + report.given_up,
        report.announced,
        report.pruned,
        f"; stopped: {report.stopped}" if report.stopped else "",
    )
    return report


def prefect_api_configured() -> bool:
    return get_current_settings().api.url is not None
