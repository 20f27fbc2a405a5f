"""Pick a flow run up when it is scheduled, not at the worker's next poll.

A Prefect worker asks the server for scheduled runs every ``PREFECT_WORKER_QUERY_SECONDS``
(compose: 2 s), so a run Augur triggers waits half an interval on average before anything
starts (0.75 s of the 3.50 s median from trigger to notification measured with a 1 s poll,
benchmarks/RESULTS.md). The server also announces every state change as an event:
``prefect.flow-run.Scheduled``, with the run's work pool among its related resources. The
Noctis worker subscribes to those of its pool (:func:`pick_up_scheduled_runs`) and polls at
once when one arrives: one poll per burst of events, and the same poll as the timer's, so a
run is submitted once, whichever poll finds it first (Prefect's worker guards that).

Polling on the timer goes on unchanged: events only make it sooner. If the events stream is
unavailable (a proxy that drops websockets, a server without events), the listener says so
once, retries every :data:`RETRY_SECONDS`, and runs are picked up by polling as before.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import anyio
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

SCHEDULED = "prefect.flow-run.Scheduled"
RETRY_SECONDS = 10.0
Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


class Poller(Protocol):
    """What the listener needs of a worker: its pool (once synced) and a poll."""

    _work_pool: Any

    async def get_and_submit_flow_runs(self) -> Any: ...


def scheduled_in_pool(pool_id: object) -> EventFilter:
    return EventFilter(
        event=EventNameFilter(name=[SCHEDULED]),
        related=EventRelatedFilter(id=[f"prefect.work-pool.{pool_id}"]),
    )


class _Coalesced:
    """Poll now; an event during a poll asks for one more poll after it, not one per event."""

    def __init__(self, worker: Poller, logger: Log) -> None:
        self._worker = worker
        self._logger = logger
        self._again = False
        self._busy = False

    async def poll(self) -> None:
        if self._busy:
            self._again = True
            return
        self._busy = True
        self._again = True
        try:
            while self._again:
                self._again = False
                await self._worker.get_and_submit_flow_runs()
        except Exception:  # the timer's next poll tries again
            self._logger.exception("A poll on a scheduled-run event failed")
        finally:
            self._busy = False


async def pick_up_scheduled_runs(worker: Poller, logger: Log) -> None:
    """Until cancelled: poll ``worker`` whenever a run of its pool is scheduled (module doc)."""
    # The pool's id comes with the worker's first sync, which Prefect signals with no event.
    while getattr(worker, "_work_pool", None) is None:  # noqa: ASYNC110
        await anyio.sleep(0.2)
    events_filter = scheduled_in_pool(worker._work_pool.id)
    coalesced = _Coalesced(worker, logger)
    warned = False
    async with anyio.create_task_group() as polls:
        while True:
            try:
                async with get_events_subscriber(filter=events_filter) as events:
                    logger.info("Picking up runs of this pool as they are scheduled (events)")
                    warned = False
                    async for _event in events:
                        polls.start_soon(coalesced.poll)
            except Exception as e:  # the timer's polls go on; try the stream again later
                log = logger.debug if warned else logger.warning
                log(
                    "No events stream (%s: %s): runs are picked up by polling; retrying in %.0f s",
                    type(e).__name__,
                    e,
                    RETRY_SECONDS,
                )
                warned = True
            await anyio.sleep(RETRY_SECONDS)
