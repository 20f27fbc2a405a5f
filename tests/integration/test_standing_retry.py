"""A standing pass retries a batch that failed as transient (:data:`noctis.standing.
BATCH_ATTEMPTS`): here its connection dies mid-batch (the backend terminated while it waits for
a study's lock), the batch rolls back whole, and the retry matches the scene, once. Before,
``noctis standing match`` in a shell failed on the first such error (only the flow's task
retried the pass)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from noctis import standing
from noctis.settings import Settings
from noctis.study import check_study, link_study
from noctis.unit_of_work import UnitOfWork
from tests.support.factories import add_dream, add_finder, square
from tests.support.studies import admin_dsn, column, linked_ids, scalar

GRACE = timedelta(days=30)
WAITING = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND query LIKE '%FROM standing_study AS locked%'"
)


async def test_a_batch_whose_connection_dies_is_retried_and_matches_once(
    atlas_settings: Settings,
    session: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
    admin: psycopg.AsyncConnection,
) -> None:
    dream = await add_dream(session, "retried")
    finder = await add_finder(session, square(10, 45, 0.5))
    await session.commit()
    async with UnitOfWork(session_factory) as uow:
        study = await check_study(uow, finder_id=finder.id, dream_id=dream.id)
        await link_study(uow, study, announce_as=str(uuid.uuid4()), standing_grace=GRACE)
    scene = await scalar(
        admin,
        "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) VALUES "
        "('late', 'sentinel-2-l2a', ST_GeomFromText(%s, 4326), '2024-06-01T10:00Z') RETURNING id",
        (square(10.1, 45, 0.1),),
    )
    async with await psycopg.AsyncConnection.connect(admin_dsn(atlas_settings)) as blocker:
        await blocker.execute(
            "SELECT 1 FROM standing_study WHERE imagery_finder_id = %s FOR UPDATE", (finder.id,)
        )
        passing = asyncio.create_task(
            standing.match_pass(
                lambda: UnitOfWork(session_factory),
                batch=10,
                grace=GRACE,
                augur=None,
                give_up_after=timedelta(minutes=1),
            )
        )
        for _ in range(400):  # the batch waits for the study's lock
            waiting = await column(admin, WAITING)
            if waiting or passing.done():
                break
            await asyncio.sleep(0.05)
        assert len(waiting) == 1, "the batch never waited for the study's lock"
        assert await scalar(admin, "SELECT pg_terminate_backend(%s)", (waiting[0],))
        await asyncio.sleep(0.2)  # the batch has seen its connection die and rolled back
        await blocker.rollback()
    report = await passing
    assert (report.batches, report.scenes, report.new, report.backlog) == (1, 1, 1, 0)
    assert await linked_ids(admin, finder.id, dream.id) == [scene]
