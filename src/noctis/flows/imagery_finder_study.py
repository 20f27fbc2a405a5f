"""The ``imagery-finder-study`` flow: match the archive, record it for the dream, tell Augur.

Augur triggers ``imagery-finder-study/default`` with ``imagery_finder_pk`` and
``dream_pk``. The tasks are thin: the work lives in :mod:`noctis.study` and the
repositories; this module only sequences it, retries what is transient and
makes the result visible (an artifact, an event, the Augur notification).

Failure handling is stated once, in :func:`failure_announced`: any error after the finder is
known to exist is sent to Augur as a ``failed`` notification, then re-raised.

Run it here: ``noctis run --imagery-finder-pk 2 --dream-pk 1`` (or
``python -m noctis.flows.imagery_finder_study --imagery-finder-pk 2 --dream-pk 1``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, ParamSpec, TypeVar

from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.concurrency.asyncio import concurrency
from prefect.context import get_run_context
from prefect.events import emit_event
from pydantic import BeforeValidator, Field

from noctis.augur import Notification, NotificationEvent, idempotency_key
from noctis.errors import (
    AugurError,
    FinderNotFound,
    NoctisError,
    PrefectUnavailable,
    is_retryable,
)
from noctis.repositories import LinkResult
from noctis.results import StudyResult, artifact_key, event_payload, render_markdown
from noctis.runtime import current_runtime, open_runtime
from noctis.settings import get_settings
from noctis.study import CheckedStudy, StudySummary, check_study, link_study, summarise_study

FLOW_NAME = "imagery-finder-study"
EVENT_NAME = "noctis.imagery-finder.studied"
ATLAS_WRITES_LIMIT = "noctis-atlas-writes"
"""Global concurrency limit on link steps; created by ``noctis deploy``."""
BIGINT_MAX = 2**63 - 1

P = ParamSpec("P")
R = TypeVar("R")


def _not_a_bool(value: object) -> object:
    # Pydantic's lax mode takes True for 1: a caller's bug, never a pk.
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer, not a boolean")
    return value


# Field before the validator: Prefect's parameter_schema reads the constraints from there.
Pk = Annotated[int, Field(gt=0, le=BIGINT_MAX), BeforeValidator(_not_a_bool)]
"""A primary key: a positive bigint. The deployment enforces this schema at trigger time."""


async def _retryable(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Retry a task only when its error says the same work may succeed (a transient database
    failure: lost connection, deadlock); see :func:`noctis.errors.is_retryable`."""
    error = await state.aresult(raise_on_failure=False)
    return isinstance(error, BaseException) and is_retryable(error)


def database_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """A task that talks to Atlas: three retries of transient failures, never cached."""
    return task(
        name=name,
        retries=3,
        retry_delay_seconds=[1, 4, 10],
        retry_condition_fn=_retryable,
        cache_policy=NO_CACHE,
    )


@database_task("check-study")
async def check(imagery_finder_pk: int, dream_pk: int) -> CheckedStudy:
    """Load the finder and the dream and check the finder; nothing is written."""
    runtime = current_runtime()
    async with runtime.unit_of_work() as uow:
        return await check_study(
            uow, finder_id=imagery_finder_pk, dream_id=dream_pk, limits=runtime.aoi_limits
        )


@database_task("link-matches")
async def link(study: CheckedStudy, *, limited: bool = False) -> LinkResult:
    """Record every match for the dream: one set-based statement, one transaction.

    ``limited`` (runs of the deployment) takes a slot of the global concurrency
    limit that ``noctis deploy`` creates, so many concurrent studies cannot exhaust
    Atlas' connections. The slot is held inside the task, so a retry gives it back
    while it waits. Ad-hoc runs (``noctis run``, the demo, tests) have no such limit.
    """
    slot = (
        concurrency(ATLAS_WRITES_LIMIT, occupy=1, strict=False)
        if limited
        else contextlib.nullcontext()
    )
    async with slot, current_runtime().unit_of_work() as uow:
        result = await link_study(uow, study)
    get_run_logger().info(
        "ImageryFinder %s: %s items matched for Dream %s (%s new)",
        study.finder_id,
        result.total,
        study.dream_id,
        result.new,
    )
    return result


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


@task(name="notify-augur", cache_policy=NO_CACHE)
async def notify(notification: Notification) -> bool:
    """Tell Augur; True once Augur acknowledged it, False when notifications are off.

    The client retries transient failures itself, within its budget.
    """
    augur = current_runtime().augur
    logger = get_run_logger()
    if augur is None:
        logger.warning("NOCTIS_AUGUR_API_URL is empty: Augur is not notified")
        return False
    receipt = await augur.notify(
        notification, idempotency_key=idempotency_key(notification.flow_run_id, notification.event)
    )
    logger.info(
        "Augur notified (%s, HTTP %s after %s attempt(s))",
        notification.event.value,
        receipt.status_code,
        receipt.attempts,
    )
    return True


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


def _from_deployment() -> bool:
    return get_run_context().flow_run.deployment_id is not None  # type: ignore[union-attr]


def _flow_run_id() -> str:
    return str(get_run_context().flow_run.id)  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def failure_announced(imagery_finder_pk: int, dream_pk: int) -> AsyncIterator[None]:
    """Send Augur a ``failed`` notification for any error raised inside, then re-raise it.

    An unknown finder is not announced (there is no study to fail). Sending is best effort:
    a failure to notify is logged and never masks the run's own error.
    """
    try:
        yield
    except FinderNotFound:
        raise
    except Exception as error:
        message = (
            str(error) if isinstance(error, NoctisError) else f"{type(error).__name__}: {error}"
        )
        try:
            await notify(
                Notification(
                    event=NotificationEvent.FAILED,
                    dream_pk=dream_pk,
                    imagery_finder_pk=imagery_finder_pk,
                    flow_run_id=_flow_run_id(),
                    error=message or type(error).__name__,
                )
            )
        except Exception as e:
            get_run_logger().warning("Could not tell Augur that the study failed: %s", e)
        raise


def _result(study: CheckedStudy, linked: LinkResult, summary: StudySummary) -> StudyResult:
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
        coverage=summary.union_coverage,
        suspect_count=summary.suspect_count,
        flow_run_id=_flow_run_id(),
        notified=False,
    )


@flow(
    name=FLOW_NAME,
    flow_run_name="finder-{imagery_finder_pk}-dream-{dream_pk}",
    validate_parameters=True,
    log_prints=False,
)
async def imagery_finder_study(imagery_finder_pk: Pk, dream_pk: Pk) -> StudyResult:
    """Find the archive imagery of an ImageryFinder and record it for a Dream, then tell Augur."""
    async with open_runtime(get_settings()):
        async with failure_announced(imagery_finder_pk, dream_pk):
            study = await check(imagery_finder_pk, dream_pk)
            linked = await link(study, limited=_from_deployment())
            summary = await summarise(study)
        result = _result(study, linked, summary)
        try:
            await _publish(result, summary)
        except Exception as e:  # the artifact and the event are views: the study stands
            get_run_logger().warning("Could not publish the study's artifact or event: %s", e)
        completed = Notification(
            event=NotificationEvent.COMPLETED,
            dream_pk=dream_pk,
            imagery_finder_pk=imagery_finder_pk,
            flow_run_id=result.flow_run_id or _flow_run_id(),
            matched_count=linked.total,
            new_count=linked.new,
            coverage=result.coverage,
        )
        try:
            notified = await notify(completed)
        except AugurError:
            get_run_logger().error(
                "The matches are recorded (%s items) but Augur was not notified; rerunning the "
                "study records nothing twice and notifies again",
                linked.total,
            )
            raise
        return result.model_copy(update={"notified": notified})


EPHEMERAL_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"


async def run_here(imagery_finder_pk: int, dream_pk: int) -> StudyResult:
    """Run the flow in this process (on an ephemeral Prefect server unless PREFECT_API_URL is
    set) and return its result; raises :class:`NoctisError` with the run's message when the run
    does not complete, :class:`PrefectUnavailable` when there is no Prefect API to run it on."""
    try:
        state = await imagery_finder_study(
            imagery_finder_pk=imagery_finder_pk, dream_pk=dream_pk, return_state=True
        )
    except RuntimeError as e:
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
