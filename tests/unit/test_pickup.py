"""noctis.pickup without a server: the filter names the pool's Scheduled events, and a burst
of events costs one poll running plus one after it, whatever its size; a failed poll is logged,
never raised (the timer's next poll tries again)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prefect.events.filters import EventRelatedFilter

from noctis.pickup import SCHEDULED, _Coalesced, scheduled_in_pool


class FakeWorker:
    _work_pool: Any = None

    def __init__(self, *, fail: bool = False) -> None:
        self.polls = 0
        self.release = asyncio.Event()
        self.fail = fail

    async def get_and_submit_flow_runs(self) -> list[object]:
        self.polls += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError("the API is down")
        return []


def test_the_filter_is_the_pools_scheduled_runs() -> None:
    f = scheduled_in_pool("1b7e")
    assert f.event is not None and f.event.name == [SCHEDULED]
    assert isinstance(f.related, EventRelatedFilter)
    assert f.related.id == ["prefect.work-pool.1b7e"]


async def test_a_burst_of_events_costs_one_poll_more() -> None:
    worker = FakeWorker()
    coalesced = _Coalesced(worker, logging.getLogger("test"))
    first = asyncio.create_task(coalesced.poll())
    await asyncio.sleep(0)
    assert worker.polls == 1
    burst = [asyncio.create_task(coalesced.poll()) for _ in range(5)]
    await asyncio.gather(*burst)  # they return at once: the running poll will go again
    assert worker.polls == 1
    worker.release.set()
    await first
    assert worker.polls == 2  # one more poll for the whole burst, then it stops
    await coalesced.poll()
    assert worker.polls == 3  # idle again: the next event polls at once


async def test_a_failed_poll_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    worker = FakeWorker(fail=True)
    worker.release.set()
    coalesced = _Coalesced(worker, logging.getLogger("test"))
    with caplog.at_level(logging.ERROR):
        await coalesced.poll()
    assert "A poll on a scheduled-run event failed" in caplog.text
    await coalesced.poll()
    assert worker.polls == 2  # and the next event polls again
