"""The ``imagery-finder-study`` flow: match the archive, record it for the dream, tell Augur.

Augur triggers ``imagery-finder-study/default`` with ``imagery_finder_pk`` and
``dream_pk``. The tasks are thin: the work lives in :mod:`noctis.study`, :mod:`noctis.outbox`
and the repositories; this module only sequences it, retries what is transient and
makes the result visible (an artifact, an event, the Augur notification).

The link step commits the lookup rows and the ``completed`` notification together (the
outbox); the run then delivers it at once (``notify-augur``). If the run dies in between, or
Augur does not take it, the dispatcher (:mod:`noctis.flows.outbox_dispatcher`) delivers it.

Failure handling is stated once, in :func:`failure_announced`: any error of the check or the
link, once the finder is known to exist, is sent to Augur as a ``failed`` notification
(through the outbox), then re-raised. A run that dies without saying so is announced by the
dispatcher.

Run it here: ``noctis run --imagery-finder-pk 2 --dream-pk 1`` (or
``python -m noctis.flows.imagery_finder_study --imagery-finder-pk 2 --dream-pk 1``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Annotated

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.concurrency.asyncio import concurrency
from prefect.events import emit_event
from pydantic import BeforeValidator, Field

from noctis.errors import NoctisError, PrefectUnavailable
from noctis.flows.housekeeping import prune_local_results
from noctis.flows.notify import deliver, failure_announced
from noctis.flows.reasons import reasons_only
from noctis.flows.tasks import database_task, flow_run_id, from_deployment
from noctis.plans import plan_in_link
from noctis.results import StudyResult, artifact_key, event_payload, render_markdown
from noctis.runtime import current_runtime, open_runtime, prefect_unreachable
from noctis.settings import get_settings
from noctis.study import (
    CheckedStudy,
    LinkedStudy,
    StudySummary,
    check_study,
    link_study,
    summarise_study,
)

FLOW_NAME = "imagery-finder-study"
EVENT_NAME = "noctis.imagery-finder.studied"
ATLAS_WRITES_LIMIT = "noctis-atlas-writes"
"""Global concurrency limit on link steps; created by ``noctis deploy``."""
BIGINT_MAX = 2**63 - 1


def _not_a_bool(value: object) -> object:
    # Pydantic's lax mode takes True for 1: a caller's bug, never a pk.
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer, not a boolean")
    return value


# Field before the validator: Prefect's parameter_schema reads the constraints from there.
Pk = Annotated[int, Field(gt=0, le=BIGINT_MAX), BeforeValidator(_not_a_bool)]
"""A primary key: a positive bigint. The deployment enforces this schema at trigger time."""


@database_task("check-study")
async def check(imagery_finder_pk: int, dream_pk: int) -> CheckedStudy:
    """Load the finder and the dream and check the finder; nothing is written."""
    runtime = current_runtime()
    async with runtime.unit_of_work() as uow:
        return await check_study(
            uow, finder_id=imagery_finder_pk, dream_id=dream_pk, limits=runtime.aoi_limits
        )


@database_task("link-matches")
async def link(study: CheckedStudy, *, limited: bool = False) -> LinkedStudy:
    """Record every match for the dream: one set-based statement, one transaction, which also
    stores the whole window's coverage plan (:func:`noctis.plans.plan_in_link`) and writes the
    ``completed`` notification (with the plan's size) into the outbox when Augur is configured.

    ``limited`` (runs of the deployment) takes a slot of the global concurrency
    limit that ``noctis deploy`` creates, so many concurrent studies cannot exhaust
    Atlas' connections. The slot is held inside the task, so a retry gives it back
    while it waits. Ad-hoc runs (``noctis run``, the demo, tests) have no such limit.
    A retry after a lost COMMIT reports the counts of that COMMIT if it landed.
    """
    runtime = current_runtime()
    slot = (
        concurrency(ATLAS_WRITES_LIMIT, occupy=1, strict=False)
        if limited
        else contextlib.nullcontext()
    )
    announce_as = flow_run_id() if runtime.augur is not None else None
    async with slot, runtime.unit_of_work() as uow:
        linked = await link_study(
            uow,
            study,
            announce_as=announce_as,
            standing_grace=runtime.settings.standing_grace,
            planner=plan_in_link,
        )
    logger = get_run_logger()
    if linked.replayed:
        logger.warning(
            "The earlier attempt's COMMIT landed although its answer was lost: reporting the "
            "counts it committed"
        )
    logger.info(
        "ImageryFinder %s: %s items matched for Dream %s (%s new)",
        study.finder_id,
        linked.total,
        study.dream_id,
        linked.new,
    )
    if linked.plan is not None:
        logger.info(
            "ImageryFinder %s: a coverage plan of %s scene(s) covers %.1f%% of the AOI (at least "
            "%s needed)",
            study.finder_id,
            linked.plan.scenes,
            100 * linked.plan.coverage,
            linked.plan.lower_bound,
        )
    return linked


@database_task("summarise")
async def summarise(study: CheckedStudy) -> StudySummary:
    async with current_runtime().unit_of_work() as uow:
        summary = await summarise_study(uow, study)
    if summary.suspect_count:
        get_run_logger().warning(
            "ImageryFinder %s: %s matched footprints have a non-finite coordinate (bad archive "
            "data); they are recorded with no coverage",
            study.finder_id,
            summary.suspect_count,
        )
    return summary


async def _publish(result: StudyResult, summary: StudySummary) -> None:
    await acreate_markdown_artifact(
        markdown=render_markdown(result, summary.top_items),
        key=artifact_key(result),
        description=f"ImageryFinder {result.imagery_finder_pk} for Dream {result.dream_pk}",
    )
    emit_event(
        event=EVENT_NAME,
        resource={
            "prefect.resource.id": f"noctis.imagery-finder.{result.imagery_finder_pk}",
            "prefect.resource.name": result.finder_name or f"finder {result.imagery_finder_pk}",
        },
        related=[
            {
                "prefect.resource.id": f"noctis.dream.{result.dream_pk}",
                "prefect.resource.role": "dream",
                "prefect.resource.name": result.dream_name,
            },
        ],
        payload=event_payload(result),
    )


def _result(
    study: CheckedStudy, linked: LinkedStudy, summary: StudySummary, *, notified: bool
) -> StudyResult:
    plan = linked.plan
    return StudyResult(
        imagery_finder_pk=study.finder_id,
        dream_pk=study.dream_id,
        finder_name=study.finder_name,
        dream_name=study.dream_name,
        location_type=study.location_type,
        start_date=study.window.start_date,
        end_date=study.window.end_date,
        window=str(study.window),
        matched_count=linked.total,
        new_count=linked.new,
        coverage=linked.coverage,
        suspect_count=summary.suspect_count,
        plan_scenes=None if plan is None else plan.scenes,
        plan_coverage=None if plan is None else plan.coverage,
        plan_share=None if plan is None else plan.share,
        plan_lower_bound=None if plan is None else plan.lower_bound,
        flow_run_id=flow_run_id(),
        notified=notified,
    )


@flow(
    name=FLOW_NAME,
    flow_run_name="finder-{imagery_finder_pk}-dream-{dream_pk}",
    validate_parameters=True,
    log_prints=False,
)
async def imagery_finder_study(imagery_finder_pk: Pk, dream_pk: Pk) -> StudyResult:
    """Find the archive imagery of an ImageryFinder and record it for a Dream, then tell Augur."""
    async with open_runtime(get_settings()) as runtime:
        prune_local_results(runtime.settings.retention)
        async with failure_announced(imagery_finder_pk, dream_pk) as progress:
            study = await check(imagery_finder_pk, dream_pk)
            progress.linking = True
            linked = await link(study, limited=from_deployment())
        # COMMITted: the outbox holds the notification; from here on it is delivered whatever
        # happens to this run.
        delivery = await deliver(linked.message) if linked.message is not None else None
        if delivery is None:
            get_run_logger().warning("NOCTIS_AUGUR_API_URL is empty: Augur is not notified")
        summary = await summarise(study)
        notified = delivery is not None and delivery.outcome == "delivered"
        result = _result(study, linked, summary, notified=notified)
        try:
            await _publish(result, summary)
        except Exception as e:  # the artifact and the event are views: the study stands
            get_run_logger().warning("Could not publish the study's artifact or event: %s", e)
        if delivery is not None and delivery.error is not None:
            get_run_logger().error(
                "The matches are recorded (%s items) but Augur has not taken the notification: %s",
                linked.total,
                delivery.error,
            )
            raise delivery.error
        return result


EPHEMERAL_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"


async def run_here(imagery_finder_pk: int, dream_pk: int) -> StudyResult:
    """Run the flow in this process (on an ephemeral Prefect server unless PREFECT_API_URL is
    set) and return its result; raises :class:`NoctisError` with the run's message when the run
    does not complete, :class:`PrefectUnavailable` when there is no Prefect API to run it on."""
    try:
        with reasons_only():  # a Noctis error's reason, not Prefect's traceback of it
            state = await imagery_finder_study(
                imagery_finder_pk=imagery_finder_pk, dream_pk=dream_pk, return_state=True
            )
    except (RuntimeError, httpx.TransportError) as e:
        if (unreachable := prefect_unreachable(e)) is not None:
            raise unreachable from None
        if EPHEMERAL_TIMEOUT not in str(e):
            raise
        raise PrefectUnavailable(
            "Prefect's ephemeral API server did not start in time (each process without "
            "PREFECT_API_URL starts its own, and several at once on a small machine start "
            "slowly): point PREFECT_API_URL at a running server (`prefect server start`), or "
            "allow a longer start-up with PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
        ) from None
    if not state.is_completed():
        error = await state.aresult(raise_on_failure=False)
        if isinstance(error, NoctisError):
            raise error
        raise NoctisError(state.message or f"the flow run ended {state.type.value}")
    result: StudyResult = await state.aresult()
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m noctis.flows.imagery_finder_study``: the flow here, its result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m noctis.flows.imagery_finder_study")
    parser.add_argument("--imagery-finder-pk", type=int, required=True)
    parser.add_argument("--dream-pk", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(run_here(args.imagery_finder_pk, args.dream_pk))
    except NoctisError as e:
        sys.stderr.write(f"Study failed: {e}\n")
        return 1
    sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
