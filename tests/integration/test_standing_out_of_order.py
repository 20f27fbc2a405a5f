"""Out-of-order commits: concurrent writers whose transactions start in one order and commit in
another (inserts and updates), studies that start standing meanwhile, and two matchers running
all the while. At the end every (standing study, scene) pair that satisfies the rule is linked
exactly once, checked against the reference formulation over the whole archive
(:mod:`noctis.devtools.reference`), and each study's last notification carries its exact total.

A watermark on ids or timestamps fails this test: a scene inserted by a transaction that
started first and commits last has the smallest id and the latest commit. In the even rounds
the matchers drain the queue after each commit, so that case happens deterministically.

Mutation checks (by hand, not committed; one run each on the loaded 2-core machine). Before
the even rounds drained between commits, this test PASSED with ``take_changes`` replaced by an
id watermark over ``standing_change`` (read ``id > watermark``, no SKIP LOCKED), and PASSED with
``fence_batch`` a no-op: the matchers seldom ran between two commits of a round. With the
drained rounds it FAILS under the watermark ("the change queue never drained": the rows of a
transaction that started first and committed last stay below the watermark). The fence is
guarded by the deterministic test at the end of this module, which fails without it; this test
does not guard it.

This test also caught a PostgreSQL GiST bug: about one run in 12 failed with "a scene linked
that no longer matches". The scene did match; the *reference* could no longer find it through
``archive_item``'s GiST, whose entry the matcher's rescanned GiST scans had flagged dead
(docs/postgres-gist-bug.md). With the matcher's joins on bitmap scans, 40 runs in a row passed.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import date, timedelta

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from noctis import standing
from noctis.errors import DatabaseUnavailable
from noctis.settings import Settings
from noctis.study import check_study, link_study
from noctis.unit_of_work import UnitOfWork
from tests.support.factories import add_dream, add_finder, square
from tests.support.studies import admin_dsn, column, linked_ids, reference_ids, scalar

Factory = async_sessionmaker[AsyncSession]
GRACE = timedelta(days=30)
WRITERS, ROUNDS, SCENES_PER_TXN, BATCH = 5, 6, 12, 7
COLLECTIONS = ("sentinel-2-l2a", "landsat-c2-l2")


def _scene(rng: random.Random) -> tuple[str, str, str, float | None]:
    """(footprint WKT, acquired_at, collection, cloud cover) near one of the AOIs."""
    lon, lat = 10 + rng.randrange(6) + rng.uniform(-0.9, 0.9), 45 + rng.uniform(-0.9, 0.9)
    day = date(2024, 1, 1) + timedelta(days=rng.randrange(365))
    cloud = None if rng.random() < 0.1 else round(rng.uniform(0, 100), 1)
    return square(lon, lat, rng.uniform(0.05, 0.4)), f"{day}T10:00Z", rng.choice(COLLECTIONS), cloud


async def _new_study(
    session: AsyncSession, factory: Factory, i: int, rng: random.Random
) -> tuple[int, int]:
    dream = await add_dream(session, f"dream {i}")
    filters: dict[str, object] = {}
    if i % 3 == 1:
        filters["max_cloud_cover"] = 40.0
    if i % 4 == 2:
        filters["collections"] = ["landsat-c2-l2"]
    if i % 2 == 0:
        filters["start"] = date(2024, 3, 1)
        # Ended ten days ago: it stands for the grace period (late ingest).
        filters["end"] = date.today() - timedelta(days=10) if i % 4 == 0 else None
    location = square(10 + i % 6 + rng.uniform(-0.3, 0.3), 45, rng.uniform(0.3, 0.8))
    finder = await add_finder(session, location, **filters)  # type: ignore[arg-type]
    await session.commit()
    async with UnitOfWork(factory) as uow:
        study = await check_study(uow, finder_id=finder.id, dream_id=dream.id)
        await link_study(uow, study, announce_as=str(uuid.uuid4()), standing_grace=GRACE)
    return finder.id, dream.id


async def _writer_round(
    dsn: str, w: int, r: int, rng: random.Random, started: list[asyncio.Event], go: asyncio.Event
) -> None:
    """One transaction: start after writer ``w - 1`` started, write, wait for ``go``, commit
    (the caller sets ``go`` per writer in a shuffled order)."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        if w > 0:
            await started[w - 1].wait()
        for k in range(SCENES_PER_TXN):
            footprint, at, collection, cloud = _scene(rng)
            await conn.execute(
                "INSERT INTO archive_item (external_id, collection, footprint, acquired_at, "
                "cloud_cover) VALUES (%s, %s, ST_GeomFromText(%s, 4326), %s, %s)",
                (f"w{w}-r{r}-{k}", collection, footprint, at, cloud),
            )
            if k == 0:
                started[w].set()  # this transaction has its xid: the next writer may start
        # Updates of this writer's committed scenes: move, re-time, re-cloud, re-collect.
        mine = await column(
            conn,
            "SELECT id FROM archive_item WHERE external_id LIKE %s AND external_id NOT LIKE %s "
            "ORDER BY id",
            (f"w{w}-%", f"w{w}-r{r}-%"),
        )
        for item in rng.sample(mine, min(3, len(mine))):
            change = rng.choice(
                [
                    ("footprint = ST_Translate(footprint, %s, 0)", rng.uniform(-1.0, 1.0)),
                    ("acquired_at = acquired_at + %s * interval '1 day'", rng.randrange(-90, 90)),
                    ("cloud_cover = %s", rng.choice([None, 5.0, 95.0])),
                    ("collection = %s", rng.choice(COLLECTIONS)),
                    ("footprint = footprint, cloud_cover = cloud_cover + 0 * %s", 1),  # a no-op
                ]
            )
            await conn.execute(
                f"UPDATE archive_item SET {change[0]} WHERE id = %s", (*change[1:], item)
            )
        await go.wait()
        await conn.commit()


async def _drained(admin: psycopg.AsyncConnection, *, within: float = 300.0) -> None:
    """Wait until the matchers have taken every queued change."""
    deadline = asyncio.get_running_loop().time() + within
    while await scalar(admin, "SELECT count(*) FROM standing_change"):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the change queue never drained: the matchers skip changes")
        await asyncio.sleep(0.02)


async def _matcher(factory: Factory, stop: asyncio.Event, stats: dict[str, int]) -> None:
    while True:
        try:
            async with UnitOfWork(factory) as uow:
                done = await standing.match_batch(uow, batch=BATCH, grace=GRACE, pass_id="test")
        except DatabaseUnavailable:  # a deadlock: rolled back whole, as the flow task retries
            stats["retries"] += 1
            continue
        if done is not None:
            stats["batches"] += 1
            stats["scenes"] += len(done.items)
        elif stop.is_set():
            return
        else:
            await asyncio.sleep(0.01)


async def test_out_of_order_commits_miss_nothing_and_link_nothing_twice(
    atlas_settings: Settings,
    session: AsyncSession,
    session_factory: Factory,
    admin: psycopg.AsyncConnection,
) -> None:
    rng = random.Random(13)
    studies = [await _new_study(session, session_factory, i, rng) for i in range(8)]
    dsn = admin_dsn(atlas_settings)
    stop, stats = asyncio.Event(), {"retries": 0, "batches": 0, "scenes": 0}
    matchers = [asyncio.create_task(_matcher(session_factory, stop, stats)) for _ in range(2)]
    commit_orders = []
    for r in range(ROUNDS):
        started = [asyncio.Event() for _ in range(WRITERS)]
        gos = [asyncio.Event() for _ in range(WRITERS)]
        writers = [
            asyncio.create_task(
                _writer_round(dsn, w, r, random.Random(rng.random()), started, gos[w])
            )
            for w in range(WRITERS)
        ]
        await asyncio.gather(*(e.wait() for e in started))
        order = list(range(WRITERS))
        while order == sorted(order):
            rng.shuffle(order)  # commits in another order than the transactions started
        commit_orders.append(order)
        for w in order:
            gos[w].set()
            if r % 2 == 0:
                # Even rounds: the matchers take each commit before the next one lands, so a
                # transaction that started earlier (smaller ids) commits after larger ids
                # were consumed: exactly what a watermark on ids skips.
                await writers[w]
                await _drained(admin)
            else:
                await asyncio.sleep(rng.uniform(0, 0.05))
            if r in (2, 4) and w == order[0]:  # studies start standing while writers commit
                studies.append(await _new_study(session, session_factory, len(studies), rng))
        await asyncio.gather(*writers)
    stop.set()
    await asyncio.gather(*matchers)

    assert await scalar(admin, "SELECT count(*) FROM standing_change") == 0
    assert all(o != sorted(o) for o in commit_orders)
    scenes = await scalar(admin, "SELECT count(*) FROM archive_item")
    assert scenes == WRITERS * ROUNDS * SCENES_PER_TXN
    assert stats["scenes"] >= scenes  # every insert, and the updates, went through the queue
    duplicates = await scalar(
        admin,
        "SELECT count(*) - count(DISTINCT (dream_id, imagery_finder_id, archive_item_id)) "
        "FROM archive_lookup_item",
    )
    assert duplicates == 0
    matched_total = 0
    for finder, dream in studies:
        expected = await reference_ids(admin, finder)
        assert await linked_ids(admin, finder, dream) == expected, (finder, dream)
        matched_total += len(expected)
        # The last notification of the study (completed or updated) carries its exact total.
        last = await scalar(
            admin,
            "SELECT (payload->>'matched_count')::int FROM notification_outbox "
            "WHERE imagery_finder_id = %s AND dream_id = %s ORDER BY id DESC LIMIT 1",
            (finder, dream),
        )
        assert last == len(expected), (finder, dream)
    assert matched_total > 50  # the check had something to check
    print(
        f"\nout-of-order: {scenes} scenes, {len(studies)} studies, {matched_total} links, {stats}"
    )


async def _wait_for(
    admin: psycopg.AsyncConnection, sql: str, *, unless: asyncio.Task[object] | None = None
) -> bool:
    """Poll ``sql`` (a count) until it is positive; False if ``unless`` finished first."""
    for _ in range(1200):
        if await scalar(admin, sql):
            return True
        if unless is not None and unless.done():
            return False
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {sql}")


async def test_a_scene_committed_between_the_link_statement_and_its_commit_is_not_lost(
    atlas_settings: Settings,
    session: AsyncSession,
    session_factory: Factory,
    admin: psycopg.AsyncConnection,
) -> None:
    """The fence, deterministically: a study's link statement has taken its snapshot but the
    study is not yet committed as standing; a scene commits in that gap, and a matcher batch
    starts. The batch must wait for the study's COMMIT (else it takes the scene from the queue
    while the study is invisible to it, and the link statement could not see the scene either:
    the scene is lost). The link step is held in the gap by an uncommitted conflicting row of
    ``standing_study``, which its enrolment waits for.

    Mutation check (by hand, not committed): with ``fence_batch`` made a no-op this test fails
    (``linked_ids`` is ``[]``: the batch took the scene while the study was invisible to it),
    whereas the out-of-order test above still passed: its studies rarely start standing in the
    very gap, so it does not guard the fence; this test does."""
    dream = await add_dream(session, "fenced")
    finder = await add_finder(session, square(10, 45, 0.5))
    await session.commit()
    async with UnitOfWork(session_factory) as uow:
        study = await check_study(uow, finder_id=finder.id, dream_id=dream.id)
    dsn = admin_dsn(atlas_settings)
    async with await psycopg.AsyncConnection.connect(dsn) as blocker:
        await blocker.execute(
            "INSERT INTO standing_study (imagery_finder_id, dream_id, location) "
            "VALUES (%s, %s, ST_GeomFromText('POINT(0 0)', 4326))",
            (finder.id, dream.id),
        )

        async def link() -> None:
            async with UnitOfWork(session_factory) as uow:
                await link_study(uow, study, announce_as=str(uuid.uuid4()), standing_grace=GRACE)

        linking = asyncio.create_task(link())
        # The link statement has run (its snapshot is taken): enrolment waits for the blocker.
        await _wait_for(
            admin,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO standing_study%'",
        )
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as writer:
            cur = await writer.execute(
                "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) "
                "VALUES ('in-the-gap', 'sentinel-2-l2a', ST_GeomFromText(%s, 4326), %s) "
                "RETURNING id",
                (square(10.1, 45, 0.1), "2024-06-01T10:00Z"),
            )
            row = await cur.fetchone()
            assert row is not None
            scene = int(row[0])

        async def one_batch() -> standing.BatchResult | None:
            async with UnitOfWork(session_factory) as uow:
                return await standing.match_batch(uow, batch=10, grace=GRACE, pass_id="test")

        matching = asyncio.create_task(one_batch())
        # The batch waits at the fence (a shared advisory lock), or, without one, finishes.
        fenced = await _wait_for(
            admin,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
            unless=matching,
        )
        await blocker.rollback()
    await linking
    result = await matching
    assert result is not None and result.items == (scene,)
    assert await reference_ids(admin, finder.id) == [scene]
    assert await linked_ids(admin, finder.id, dream.id) == [scene]  # linked, once
    assert fenced  # and by the batch, which waited for the study's COMMIT
