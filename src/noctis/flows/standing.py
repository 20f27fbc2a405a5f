"""The standing studies' flows: ``standing-match`` and ``close-study``.

``noctis deploy`` registers ``standing-match/default`` on a schedule of
``NOCTIS_STANDING_MATCH_SECONDS`` and with a trigger on the event :data:`LOADED_EVENT`, which a
loader emits after it commits scenes, so new scenes are matched at once rather than at the next
tick. Runs may overlap (schedule, events, ``noctis standing match``): each batch takes its
scenes ``FOR UPDATE SKIP LOCKED``, so overlapping runs share the queue and never match a scene
twice. ``close-study/default`` closes a study for Augur (``noctis study close`` in the shell).

The work is in :mod:`noctis.standing`; this module sequences it and retries what is transient
(a batch that failed rolled back whole; the retry takes its scenes again).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any

from prefect import flow, get_run_logger
from pydantic import Field

from noctis import standing
from noctis.flows.housekeeping import prune_local_results
from noctis.flows.imagery_finder_study import Pk
from noctis.flows.tasks import database_task, flow_run_id
from noctis.runtime import current_runtime, open_runtime
from noctis.settings import Settings, get_settings
from noctis.standing import ClosedStudy, PassReport

MATCH_FLOW_NAME = "standing-match"
CLOSE_FLOW_NAME = "close-study"
LOADED_EVENT = "noctis.archive.loaded"
"""The event a loader emits after committing scenes: it triggers ``standing-match/default``."""
ARCHIVE_RESOURCE = "noctis.archive"


async def announce_loaded(payload: dict[str, Any]) -> bool:
    """Emit :data:`LOADED_EVENT` with ``payload`` (``noctis archive load`` does, after it
    commits scenes), so that ``standing-match/default`` runs now rather than at its next tick.

    Only to a running Prefect server (``PREFECT_API_URL`` set): a loader never starts an
    ephemeral one. Returns whether the event was sent. A failure is logged, never raised: the
    scenes are committed and queued whatever happens here, and the matcher's schedule takes
    them.
    """
    from prefect.events.clients import get_events_client
    from prefect.events.schemas.events import Event
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return False
    event = Event(
        event=LOADED_EVENT, resource={"prefect.resource.id": ARCHIVE_RESOURCE}, payload=payload
    )
    try:
        async with get_events_client(reconnection_attempts=2) as client:
            await client.emit(event)
    except Exception as e:  # the load stands; the schedule catches up
        logging.getLogger(__name__).warning(
            "Could not tell Prefect that scenes were loaded (%s: %s); the standing matcher's "
            "schedule will take them",
            type(e).__name__,
            e,
        )
        return False
    return True


async def run_pass(
    settings: Settings, *, pass_id: str | None = None, max_batches: int | None = None
) -> PassReport:
    """One pass on ``settings``, in this process (the flow's task, and ``noctis standing
    match``)."""
    async with open_runtime(settings) as runtime:
        return await standing.match_pass(
            runtime.unit_of_work,
            batch=settings.noctis_standing_batch,
            grace=settings.standing_grace,
            augur=runtime.augur,
            give_up_after=settings.outbox_give_up_after,
            pass_id=pass_id,
            max_batches=max_batches,
        )


@database_task("match-standing")
async def match(max_batches: int | None) -> PassReport:
    return await run_pass(get_settings(), pass_id=flow_run_id(), max_batches=max_batches)


@flow(name=MATCH_FLOW_NAME, log_prints=False)
async def standing_match(
    max_batches: Annotated[int | None, Field(gt=0)] = None,
) -> PassReport:
    """Match the scenes queued since the last pass against every standing study; tell Augur."""
    settings = get_settings()
    prune_local_results(settings.retention)
    report = await match(max_batches)
    logger = get_run_logger()
    logger.info(
        "Standing match: %d scenes in %d batch(es) against %d standing studies: %d new "
        "lookup rows, %d removed, %d notifications (%d delivered), %d scenes still queued",
        report.scenes, report.batches, report.standing, report.new, report.removed,
        report.notifications, report.delivered, report.backlog,
    )  # fmt: skip
    if report.undelivered:
        logger.warning(
            "%d notifications wait in the outbox: the dispatcher delivers them once Augur "
            "takes them",
            report.undelivered,
        )
    return report


@database_task("close-standing-study")
async def close(imagery_finder_pk: int, dream_pk: int) -> ClosedStudy:
    runtime = current_runtime()
    async with runtime.unit_of_work() as uow:
        return await standing.close_study(
            uow,
            finder_id=imagery_finder_pk,
            dream_id=dream_pk,
            grace=runtime.settings.standing_grace,
        )


@flow(
    name=CLOSE_FLOW_NAME,
    flow_run_name="close-finder-{imagery_finder_pk}-dream-{dream_pk}",
    validate_parameters=True,
    log_prints=False,
)
async def close_study(imagery_finder_pk: Pk, dream_pk: Pk) -> dict[str, Any]:
    """Close a standing study: scenes ingested from now on are not matched to it."""
    async with open_runtime(get_settings()):
        closed = await close(imagery_finder_pk, dream_pk)
    get_run_logger().info(
        "ImageryFinder %s for Dream %s %s closed (%s)",
        imagery_finder_pk,
        dream_pk,
        "was already" if closed.already else "is now",
        closed.state.closed_reason,
    )
    return closed_summary(closed)


def closed_summary(closed: ClosedStudy) -> dict[str, Any]:
    state = closed.state
    return {
        "imagery_finder_pk": state.finder_id,
        "dream_pk": state.dream_id,
        "closed_at": None if state.closed_at is None else state.closed_at.isoformat(),
        "closed_reason": state.closed_reason,
        "already_closed": closed.already,
    }


def match_every(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.noctis_standing_match_seconds)
