"""Telling Augur from a flow run: its notification right after COMMIT, or its failure.

Both go through the outbox (:mod:`noctis.outbox`): what the run does not deliver itself, the
dispatcher delivers. Failure handling is stated once, in :func:`failure_announced`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from noctis import outbox
from noctis.augur import Notification, NotificationEvent, failed_key
from noctis.errors import DatabaseError, FinderNotFound, NoctisError
from noctis.flows.tasks import database_task, flow_run_id
from noctis.outbox import Delivery
from noctis.redaction import redact
from noctis.repositories import OutboxMessage
from noctis.runtime import current_runtime


@database_task("notify-augur")
async def deliver(message: OutboxMessage) -> Delivery:
    """Deliver the run's notification right after COMMIT, unless a dispatcher has it.

    The client retries transient failures itself, within its budget; whatever Augur does not
    take stays in the outbox for the dispatcher. Only Atlas errors are retried here.
    """
    runtime = current_runtime()
    assert runtime.augur is not None  # the outbox is written only when Augur is configured
    delivery = await outbox.deliver(
        runtime.unit_of_work,
        runtime.augur,
        message.id,
        by=f"flow run {flow_run_id()}",
        give_up_after=runtime.settings.outbox_give_up_after,
    )
    logger = get_run_logger()
    if delivery.receipt is not None:
        logger.info(
            "Augur notified (%s, HTTP %s after %s attempt(s))",
            message.notification.event.value,
            delivery.receipt.status_code,
            delivery.receipt.attempts,
        )
    elif delivery.outcome == "skipped":
        logger.info("A dispatcher is delivering %s (or has delivered it)", message.key)
    return delivery


@task(name="announce-failure", cache_policy=NO_CACHE)
async def announce_failure(notification: Notification, *, linking: bool) -> bool:
    """Tell Augur the run failed, through the outbox; True once Augur acknowledged it.

    When Atlas cannot take the outbox row: a run that never reached the link step sends it
    directly, under the same key the outbox would give it; one that did may have committed
    its update (whose ``completed`` must stand), so the dispatcher announces it later.
    """
    runtime, logger = current_runtime(), get_run_logger()
    if runtime.augur is None:
        logger.warning("NOCTIS_AUGUR_API_URL is empty: Augur is not notified")
        return False
    try:
        async with runtime.unit_of_work() as uow:
            message = await outbox.enqueue_failure(uow, notification)
    except DatabaseError as e:
        if linking:
            logger.warning("The dispatcher will announce this run's outcome (Atlas: %s)", e)
            return False
        key = failed_key(notification.imagery_finder_pk, notification.dream_pk, flow_run_id())
        await runtime.augur.notify(notification, idempotency_key=key)
        return True
    if message is None:  # pragma: no cover - add_failure always finds the run's outcome
        return False
    delivery = await deliver.fn(message)
    if delivery.error is not None:
        logger.warning("Augur has not taken %s: %s", message.key, delivery.error)
    return delivery.outcome == "delivered"


class _Progress:
    linking = False
    """Whether the link step began (its update may have committed)."""


@contextlib.asynccontextmanager
async def failure_announced(imagery_finder_pk: int, dream_pk: int) -> AsyncIterator[_Progress]:
    """Send Augur a ``failed`` notification for any error raised inside, then re-raise it.

    An unknown finder is not announced (there is no study to fail). Sending is best effort:
    a failure to notify is logged and never masks the run's own error.
    """
    progress = _Progress()
    try:
        yield progress
    except FinderNotFound:
        raise
    except Exception as error:
        message = (
            str(error) if isinstance(error, NoctisError) else f"{type(error).__name__}: {error}"
        )  # Noctis' own messages hold no secret; anything else's might (a driver's DSN)
        message = redact(message, current_runtime().settings.secrets())
        try:
            await announce_failure(
                Notification(
                    event=NotificationEvent.FAILED,
                    dream_pk=dream_pk,
                    imagery_finder_pk=imagery_finder_pk,
                    flow_run_id=flow_run_id(),
                    error=message or type(error).__name__,
                ),
                linking=progress.linking,
            )
        except Exception as e:
            get_run_logger().warning("Could not tell Augur that the study failed: %s", e)
        raise
