"""Standing studies on a real PostGIS: the change queue and its triggers, the standing rule,
the set-based match (the study's own rule and coverage), removals, closing, and the ``updated``
notifications through the outbox."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from noctis import standing
from noctis.augur import AugurClient, RetryPolicy
from noctis.errors import DreamNotFound, InvalidFinder, StudyNeverRan, StudyNotStanding
from noctis.plans import plan_in_link
from noctis.standing import PassReport
from noctis.study import check_study, link_study
from noctis.unit_of_work import UnitOfWork
from tests.support.augur_stub import AugurStub, Reply
from tests.support.factories import add_dream, add_finder, square
from tests.support.studies import coverages, linked_ids, reference_ids, scalar

Factory = async_sessionmaker[AsyncSession]
GRACE = timedelta(days=30)
QUICK = RetryPolicy(max_attempts=2, max_retry_seconds=2.0, backoff_base=0.01, backoff_max=0.05)
INSERT_ITEM = (
    "INSERT INTO archive_item (external_id, collection, footprint, acquired_at, cloud_cover) "
    "VALUES (%s, %s, ST_GeomFromText(%s, 4326), %s, %s) RETURNING id"
)


@pytest.fixture
async def augur(augur_stub: AugurStub) -> AsyncIterator[AugurClient]:
    async with AugurClient(base_url=augur_stub.url, connect_timeout=1, timeout=2, retry=QUICK) as c:
        yield c


async def _item(
    admin: psycopg.AsyncConnection,
    wkt: str,
    *,
    at: datetime = datetime(2024, 6, 1, tzinfo=UTC),
    collection: str = "sentinel-2-l2a",
    cloud: float | None = 10.0,
    name: str | None = None,
) -> int:
    name = name or f"scene-{await scalar(admin, 'SELECT count(*) FROM archive_item')}-{wkt[:20]}"
    return int(await scalar(admin, INSERT_ITEM, (name, collection, wkt, at, cloud)))


async def _study(
    session: AsyncSession, factory: Factory, wkt: str, *, grace: timedelta = GRACE, **finder: object
) -> tuple[int, int]:
    dream = await add_dream(session)
    found = await add_finder(session, wkt, **finder)  # type: ignore[arg-type]
    await session.commit()
    async with UnitOfWork(factory) as uow:
        study = await check_study(uow, finder_id=found.id, dream_id=dream.id)
    async with UnitOfWork(factory) as uow:
        await link_study(uow, study, announce_as=str(uuid.uuid4()), standing_grace=grace)
    return found.id, dream.id


async def _pass(
    factory: Factory,
    augur: AugurClient | None = None,
    *,
    grace: timedelta = GRACE,
    batch: int = 500,
) -> PassReport:
    return await standing.match_pass(
        lambda: UnitOfWork(factory), batch=batch, grace=grace, augur=augur,
        give_up_after=timedelta(hours=1),
    )  # fmt: skip


async def _queued(admin: psycopg.AsyncConnection) -> list[int]:
    cur = await admin.execute("SELECT archive_item_id FROM standing_change ORDER BY id")
    return [r[0] for r in await cur.fetchall()]


# ------------------------------------------------------------------------------ the queue


async def test_the_triggers_queue_inserts_and_real_changes_only(
    admin: psycopg.AsyncConnection,
) -> None:
    a = await _item(admin, square(10, 45, 0.1))
    b = await _item(admin, square(11, 45, 0.1))
    assert await _queued(admin) == [a, b]
    await admin.execute("DELETE FROM standing_change")
    # No-op UPDATEs and changes of unmatched fields queue nothing.
    await admin.execute("UPDATE archive_item SET footprint = footprint, cloud_cover = cloud_cover")
    await admin.execute("UPDATE archive_item SET gsd = 30, properties = '{\"x\": 1}'")
    await admin.execute("UPDATE archive_item SET external_id = external_id || '-renamed'")
    assert await _queued(admin) == []
    # Each matched field, alone, queues the scene (once per statement).
    for change in (
        "footprint = ST_Translate(footprint, 0.01, 0)",
        "acquired_at = acquired_at + interval '1 day'",
        "cloud_cover = NULL",
        "collection = 'landsat-c2-l2'",
    ):
        await admin.execute(f"UPDATE archive_item SET {change} WHERE id = %s", (a,))
    assert await _queued(admin) == [a, a, a, a]


async def test_a_rolled_back_insert_queues_nothing_and_copy_queues_every_row(
    admin: psycopg.AsyncConnection,
) -> None:
    async with admin.transaction(force_rollback=True):
        await _item(admin, square(10, 45, 0.1), name="rolled-back")
    assert await _queued(admin) == []
    async with admin.cursor().copy(
        "COPY archive_item (external_id, collection, footprint, acquired_at) FROM STDIN"
    ) as copy:
        for i in range(50):
            await copy.write_row(
                (f"copied-{i}", "s2", f"SRID=4326;{square(10, 45, 0.1)}", "2024-06-01")
            )
    assert len(await _queued(admin)) == 50


# ------------------------------------------------------------------------------ matching


async def test_new_scenes_are_linked_with_the_study_rule_and_coverage_and_announced(
    session: AsyncSession,
    session_factory: Factory,
    admin: psycopg.AsyncConnection,
    augur: AugurClient,
    augur_stub: AugurStub,
) -> None:
    finder, dream = await _study(
        session, session_factory, square(10, 45, 0.5), max_cloud_cover=50.0,
        collections=["sentinel-2-l2a"], start=date(2024, 1, 1),
    )  # fmt: skip
    other_finder, other_dream = await _study(session, session_factory, square(20, 45, 0.5))
    inside = await _item(admin, square(10.2, 45, 0.3))
    await _item(admin, square(10, 45, 0.3), cloud=None)  # unknown cloud cover: excluded
    await _item(admin, square(10, 45, 0.3), cloud=80.0)  # too cloudy
    await _item(admin, square(10, 45, 0.3), collection="landsat-c2-l2")  # other collection
    await _item(admin, square(10, 45, 0.3), at=datetime(2023, 12, 31, 23, 59, tzinfo=UTC))
    touching = await _item(admin, square(10.7, 45, 0.2))  # shares the AOI's edge at 10.5
    both = await _item(admin, "POLYGON((10 45, 20 45, 20 45.1, 10 45.1, 10 45))")
    report = await _pass(session_factory, augur)
    assert (report.scenes, report.new, report.removed) == (7, 4, 0)
    assert await linked_ids(admin, finder, dream) == sorted([inside, touching, both])
    assert await linked_ids(admin, finder, dream) == await reference_ids(admin, finder)
    assert await linked_ids(admin, other_finder, other_dream) == [both]
    for _, recorded, expected in await coverages(admin, finder, dream):
        assert recorded == pytest.approx(expected, rel=1e-9)
    # One `updated` per study for the batch, through the outbox, delivered with its key.
    notes = {r.json["imagery_finder_pk"]: r for r in augur_stub.requests}
    assert set(notes) == {finder, other_finder}
    body = notes[finder].json
    assert body["event"] == "imagery-finder-study.updated"
    assert (body["new_count"], body["matched_count"], body["removed_count"]) == (3, 3, 0)
    key = notes[finder].header("Idempotency-Key") or ""
    assert re.fullmatch(rf"noctis:imagery-finder-{finder}:dream-{dream}:update-\d+:updated", key)
    assert (report.notifications, report.delivered) == (2, 2)
    assert await _queued(admin) == []
    # A second pass finds nothing: every scene was seen once.
    again = await _pass(session_factory, augur)
    assert (again.scenes, again.new, again.notifications) == (0, 0, 0)


async def test_a_retry_after_holds_the_next_batches_deliveries(
    session: AsyncSession,
    session_factory: Factory,
    admin: psycopg.AsyncConnection,
    augur: AugurClient,
    augur_stub: AugurStub,
) -> None:
    # Augur answers the first batch's `updated` with a minute's Retry-After (past the 2 s
    # budget): later batches leave theirs in the outbox rather than call Augur before then.
    await _study(session, session_factory, square(10, 45, 0.5))
    augur_stub.fallback(Reply(503, headers={"Retry-After": "60"}))
    await _item(admin, square(10, 45, 0.2))
    first = await _pass(session_factory, augur)
    assert (first.notifications, first.delivered, first.undelivered) == (1, 0, 1)
    assert len(augur_stub.requests) == 1
    await _item(admin, square(10.1, 45, 0.2))
    second = await _pass(session_factory, augur)
    assert (second.new, second.notifications, second.undelivered) == (1, 1, 1)
    assert len(augur_stub.requests) == 1  # not called within the minute asked
    pending = await scalar(
        admin,
        "SELECT count(*) FROM notification_outbox WHERE state = 'pending'"
        " AND event = 'imagery-finder-study.updated'",
    )
    assert pending == 2  # both batches' updates wait in the outbox


async def test_an_update_that_moves_a_scene_out_removes_its_row_and_says_so(
    session: AsyncSession,
    session_factory: Factory,
    admin: psycopg.AsyncConnection,
    augur: AugurClient,
    augur_stub: AugurStub,
) -> None:
    finder, dream = await _study(session, session_factory, square(10, 45, 0.5))
    scene = await _item(admin, square(10, 45, 0.2))
    stays = await _item(admin, square(10.1, 45, 0.2))
    await _pass(session_factory, augur)
    augur_stub.reset()
    await admin.execute(
        "UPDATE archive_item SET footprint = ST_Translate(footprint, 5, 0) WHERE id = %s", (scene,)
    )
    report = await _pass(session_factory, augur)
    assert (report.new, report.removed) == (0, 1)
    assert await linked_ids(admin, finder, dream) == [stays]
    [note] = augur_stub.requests
    assert (note.json["removed_count"], note.json["new_count"], note.json["matched_count"]) == (
        1, 0, 1,
    )  # fmt: skip
    # Moved back in: linked again, with the coverage of its new footprint.
    await admin.execute(
        "UPDATE archive_item SET footprint = ST_Translate(footprint, -5.1, 0) WHERE id = %s",
        (scene,),
    )
    assert (await _pass(session_factory, augur)).new == 1
    assert await linked_ids(admin, finder, dream) == await reference_ids(admin, finder)
    for _, recorded, expected in await coverages(admin, finder, dream):
        assert recorded == pytest.approx(expected, rel=1e-9)


async def test_a_batch_that_removes_a_studys_scenes_deletes_its_stored_plans(
    session: AsyncSession, session_factory: Factory, admin: psycopg.AsyncConnection
) -> None:
    moved = await _item(admin, square(10, 45, 0.6))
    kept = await _item(admin, square(20, 45, 0.6))
    await admin.execute("DELETE FROM standing_change")
    studies = []
    for aoi in (square(10, 45, 0.5), square(20, 45, 0.5)):
        dream = await add_dream(session)
        finder = await add_finder(session, aoi)
        await session.commit()
        async with UnitOfWork(session_factory) as uow:
            study = await check_study(uow, finder_id=finder.id, dream_id=dream.id)
        async with UnitOfWork(session_factory) as uow:
            linked = await link_study(uow, study, standing_grace=GRACE, planner=plan_in_link)
        assert linked.plan is not None and linked.plan.scenes == 1
        studies.append((finder.id, dream.id))
    await admin.execute(
        "UPDATE archive_item SET footprint = ST_Translate(footprint, 5, 0) WHERE id = %s", (moved,)
    )
    assert (await _pass(session_factory)).removed == 1

    async def plans(finder: int) -> int:
        sql = "SELECT count(*) FROM coverage_plan WHERE imagery_finder_id = %s"
        return int(await scalar(admin, sql, (finder,)))

    assert await plans(studies[0][0]) == 0  # its scene is gone: so is its plan
    assert await plans(studies[1][0]) == 1  # untouched
    assert await linked_ids(admin, *studies[1]) == [kept]
    items = (
        "SELECT l.archive_item_id FROM coverage_plan_item i "
        "JOIN archive_lookup_item l ON l.id = i.archive_lookup_item_id"
    )
    assert await scalar(admin, items) == kept


async def test_a_footprint_change_that_still_matches_refreshes_the_coverage(
    session: AsyncSession, session_factory: Factory, admin: psycopg.AsyncConnection
) -> None:
    finder, dream = await _study(session, session_factory, square(10, 45, 0.5))
    scene = await _item(admin, square(10, 45, 0.1))
    await _pass(session_factory)
    [(_, before, _)] = await coverages(admin, finder, dream)
    assert before is not None
    await admin.execute(
        "UPDATE archive_item SET footprint = ST_Buffer(footprint, 0.1, 'join=mitre') WHERE id = %s",
        (scene,),
    )
    report = await _pass(session_factory)
    assert (report.new, report.removed, report.notifications) == (0, 0, 0)  # no Augur here
    [(_, after, expected)] = await coverages(admin, finder, dream)
    assert after is not None
    assert after == pytest.approx(expected, rel=1e-9)
    assert after > before


HEXAGON = "POLYGON((10 44.3, 10.3 44, 10.7 44, 11 44.3, 10.7 44.9, 10.3 44.9, 10 44.3))"
# A quadrilateral whose third vertex has x = %(x)s (WKT cannot spell Infinity or NaN).
NON_FINITE = (
    "ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY[ST_MakePoint(10.1, 44.1), ST_MakePoint(10.4, "
    "44.1), ST_MakePoint(%(x)s::float8, 44.4), ST_MakePoint(10.1, 44.4), ST_MakePoint(10.1, "
    "44.1)])), 4326)"
)


async def test_a_non_finite_footprint_under_a_hexagon_does_not_fail_the_batch(
    session: AsyncSession, session_factory: Factory, admin: psycopg.AsyncConnection
) -> None:
    """GEOS raises on a non-finite footprint for an AOI that is not a rectangle; the matcher
    decides it by its box (as the link step does), both when it arrives and when an update
    makes a linked scene's footprint non-finite."""
    finder, dream = await _study(session, session_factory, HEXAGON)
    bad = await scalar(
        admin,
        "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) VALUES "
        f"('bad', 'sentinel-2-l2a', {NON_FINITE}, '2024-06-01T00:00Z') RETURNING id",
        {"x": "Infinity"},
    )
    good = await _item(admin, square(10.5, 44.5, 0.1))
    report = await _pass(session_factory)
    assert (report.scenes, report.new, report.removed) == (2, 2, 0)
    assert await linked_ids(admin, finder, dream) == sorted([bad, good])
    assert await linked_ids(admin, finder, dream) == await reference_ids(admin, finder)
    await admin.execute(
        f"UPDATE archive_item SET footprint = {NON_FINITE} WHERE id = %(id)s",
        {"x": "NaN", "id": good},
    )
    report = await _pass(session_factory)
    assert (report.scenes, report.new, report.removed) == (1, 0, 0)  # still linked, by its box
    assert await linked_ids(admin, finder, dream) == await reference_ids(admin, finder)
    for _, recorded, expected in await coverages(admin, finder, dream):
        assert recorded is None and expected is None


# ------------------------------------------------------------------------------ the rule


async def test_which_studies_stand(
    session: AsyncSession, session_factory: Factory, admin: psycopg.AsyncConnection
) -> None:
    today = datetime.now(UTC).date()
    aoi = square(10, 45, 0.5)
    open_ended = await _study(session, session_factory, aoi, start=date(2024, 1, 1))
    future = await _study(session, session_factory, aoi, end=today + timedelta(days=10))
    in_grace = await _study(session, session_factory, aoi, end=today - timedelta(days=20))
    past_grace = await _study(session, session_factory, aoi, end=today - timedelta(days=40))
    closed = await _study(session, session_factory, aoi)
    async with UnitOfWork(session_factory) as uow:
        done = await standing.close_study(uow, finder_id=closed[0], dream_id=closed[1])
        assert not done.already and done.state.closed_reason == standing.CLOSED_BY_REQUEST
        again = await standing.close_study(uow, finder_id=closed[0], dream_id=closed[1])
        assert again.already
    await _item(admin, square(10, 45, 0.1), at=datetime(2024, 6, 1, tzinfo=UTC))
    await _item(admin, square(10, 45, 0.1), at=datetime.now(UTC) - timedelta(days=30))
    report = await _pass(session_factory)
    assert report.standing == 3
    linked = {s: len(await linked_ids(admin, *s)) for s in (open_ended, future, in_grace)}
    assert linked == {open_ended: 2, future: 2, in_grace: 2}
    assert await linked_ids(admin, *past_grace) == []  # never stood: no row at all
    assert (
        await scalar(
            admin,
            "SELECT count(*) FROM standing_study WHERE imagery_finder_id = %s",
            (past_grace[0],),
        )
        == 0
    )
    assert await linked_ids(admin, *closed) == []
    # A rerun of a closed study makes it stand again, and catches up.
    async with UnitOfWork(session_factory) as uow:
        study = await check_study(uow, finder_id=closed[0], dream_id=closed[1])
        assert (await link_study(uow, study)).new == 2
    async with UnitOfWork(session_factory) as uow:
        state = await uow.standing.state(finder_id=closed[0], dream_id=closed[1], grace=GRACE)
    assert state is not None and state.standing


async def test_a_rerun_whose_window_ended_beyond_the_grace_stops_the_study_standing(
    session: AsyncSession, session_factory: Factory, admin: psycopg.AsyncConnection
) -> None:
    finder, dream = await _study(session, session_factory, square(10, 45, 0.5))  # open-ended
    # Augur ends the finder's window 60 days ago (beyond the 30-day grace) and reruns it.
    ended = datetime.now(UTC).date() - timedelta(days=60)
    await admin.execute("UPDATE imagery_finder SET end_date = %s WHERE id = %s", (ended, finder))
    async with UnitOfWork(session_factory) as uow:
        study = await check_study(uow, finder_id=finder, dream_id=dream)
    async with UnitOfWork(session_factory) as uow:
        await link_study(uow, study, standing_grace=GRACE)
    async with UnitOfWork(session_factory) as uow:
        assert await uow.standing.state(finder_id=finder, dream_id=dream, grace=GRACE) is None
    late = await _item(admin, square(10, 45, 0.1), at=datetime.now(UTC))  # outside the window
    report = await _pass(session_factory)
    assert report.scenes == 1 and report.new == 0
    assert late not in await linked_ids(admin, finder, dream)
    assert await linked_ids(admin, finder, dream) == await reference_ids(admin, finder)


async def test_a_scene_is_judged_standing_at_the_time_it_was_queued(
    session: AsyncSession, session_factory: Factory, admin: psycopg.AsyncConnection
) -> None:
    """Close: a scene queued while the study stood is matched even by a batch after the close;
    one queued after the close is not. Grace: likewise, at the scene's enqueue time."""
    aoi = square(10, 45, 0.5)
    closed = await _study(session, session_factory, aoi)
    before = await _item(admin, square(10, 45, 0.1))  # queued while the study stands
    async with UnitOfWork(session_factory) as uow:
        await standing.close_study(uow, finder_id=closed[0], dream_id=closed[1])
    after = await _item(admin, square(10, 45, 0.2))  # queued after the close
    report = await _pass(session_factory)
    assert report.scenes == 2 and await _queued(admin) == []
    assert await linked_ids(admin, *closed) == [before]
    assert after not in await linked_ids(admin, *closed)

    # Ended 40 days ago: enrolled under a 60-day grace, matched with the 30-day one.
    ended = datetime.now(UTC).date() - timedelta(days=40)
    lapsed = await _study(session, session_factory, aoi, end=ended, grace=timedelta(days=60))
    in_grace = await _item(admin, square(10, 45, 0.1))
    await admin.execute(  # queued 20 days ago: the window had ended 19 days before, in grace
        "UPDATE standing_change SET enqueued_at = now() - interval '20 days' "
        "WHERE archive_item_id = %s",
        (in_grace,),
    )
    too_late = await _item(admin, square(10, 45, 0.2))  # queued now: 39 days after the end
    report = await _pass(session_factory)
    assert report.scenes == 2
    assert await linked_ids(admin, *lapsed) == [before, after, in_grace]  # its run linked two
    assert too_late not in await linked_ids(admin, *lapsed)


async def test_closing_a_study_that_never_ran_names_it(session_factory: Factory) -> None:
    async with UnitOfWork(session_factory) as uow:
        with pytest.raises(StudyNeverRan, match="ImageryFinder 7 for Dream 3 is not a standing"):
            await standing.close_study(uow, finder_id=7, dream_id=3)


async def test_closing_a_study_of_an_unknown_dream_says_so(
    session: AsyncSession, session_factory: Factory
) -> None:
    finder = await add_finder(session, square(10, 45, 0.5), end=date(2020, 1, 31))
    await session.commit()
    async with UnitOfWork(session_factory) as uow:
        with pytest.raises(DreamNotFound, match="Dream 987654 does not exist"):
            await standing.close_study(uow, finder_id=finder.id, dream_id=987654)


async def test_closing_a_study_whose_finder_has_a_bc_date_says_so(
    session: AsyncSession, session_factory: Factory, admin: psycopg.AsyncConnection
) -> None:
    finder = await add_finder(session, square(10, 45, 0.5))
    dream = await add_dream(session)
    await session.commit()
    await admin.execute(
        "UPDATE imagery_finder SET start_date = '0044-03-15 BC' WHERE id = %s", (finder.id,)
    )
    async with UnitOfWork(session_factory) as uow:
        with pytest.raises(InvalidFinder, match=r"has a start_date of 0044-03-15 BC, which"):
            await standing.close_study(uow, finder_id=finder.id, dream_id=dream.id)


async def test_closing_a_study_that_ran_but_never_stood_says_why(
    session: AsyncSession, session_factory: Factory, admin: psycopg.AsyncConnection
) -> None:
    ended = datetime.now(UTC).date() - timedelta(days=90)
    await _item(admin, square(10, 45, 0.1), at=datetime(2024, 6, 1, tzinfo=UTC))
    past = await _study(session, session_factory, square(10, 45, 0.5), end=ended)
    empty = await _study(session, session_factory, square(50, 45, 0.5), end=ended)  # no match
    open_ended = await _study(session, session_factory, square(10, 45, 0.5))
    for (finder, dream), ran in ((past, "it ran (1 lookup row, kept) but "), (empty, "")):
        async with UnitOfWork(session_factory) as uow:
            with pytest.raises(StudyNotStanding) as raised:
                await standing.close_study(uow, finder_id=finder, dream_id=dream, grace=GRACE)
        assert not isinstance(raised.value, StudyNeverRan)
        assert str(raised.value) == (
            f"ImageryFinder {finder} for Dream {dream} is not a standing study: {ran}its window "
            f"ended on {ended.isoformat()}, more than 30 days (NOCTIS_STANDING_GRACE_DAYS) ago, "
            "and a study whose window ended longer ago than that never stands: there is "
            "nothing to close"
        )
    # It ran with such a window, which Augur has opened since: a rerun makes it stand.
    await admin.execute("UPDATE imagery_finder SET end_date = NULL WHERE id = %s", (past[0],))
    async with UnitOfWork(session_factory) as uow:
        with pytest.raises(StudyNotStanding, match="or its window was extended since it last ran"):
            await standing.close_study(uow, finder_id=past[0], dream_id=past[1], grace=GRACE)
    # A study that last ran before revision 0004 has rows and no standing row, window open.
    await admin.execute("DELETE FROM standing_study WHERE imagery_finder_id = %s", (open_ended[0],))
    async with UnitOfWork(session_factory) as uow:
        with pytest.raises(StudyNotStanding, match=r"before Noctis recorded standing studies"):
            await standing.close_study(
                uow, finder_id=open_ended[0], dream_id=open_ended[1], grace=GRACE
            )


async def test_a_scene_is_evaluated_by_one_batch_at_a_time(
    session: AsyncSession, session_factory: Factory, admin: psycopg.AsyncConnection
) -> None:
    """Batch A evaluates a scene's insert (its old footprint matches) and has not committed;
    the scene is then moved out, and batch B takes that update. B must wait for A: evaluated
    at once, B finds nothing to unlink (A's row is not visible yet) and A's commit leaves a
    link the rule no longer gives (found by the out-of-order test, about one run in four)."""
    finder, dream = await _study(session, session_factory, square(10, 45, 0.5))
    scene = await _item(admin, square(10, 45, 0.2))
    async with UnitOfWork(session_factory) as a:
        await a.standing.fence_batch()
        queued = await a.standing.take_changes(limit=10)
        assert list(queued) == [scene]
        await a.standing.lock_touched(queued, grace=GRACE)
        assert await a.standing.link_items(queued, grace=GRACE) == {(finder, dream): 1}
        await admin.execute(
            "UPDATE archive_item SET footprint = ST_Translate(footprint, 5, 0) WHERE id = %s",
            (scene,),
        )
        async with UnitOfWork(session_factory) as b:
            batch_b = asyncio.create_task(
                standing.match_batch(b, batch=10, grace=GRACE, pass_id=None)
            )
            await asyncio.sleep(1.0)
            assert not batch_b.done(), "batch B evaluated the scene while batch A held it"
            await a.commit()
            done = await asyncio.wait_for(batch_b, timeout=30)
    assert done is not None and done.items == (scene,)
    assert await reference_ids(admin, finder) == []
    assert await linked_ids(admin, finder, dream) == []
    assert await _queued(admin) == []


async def test_a_batch_counts_a_study_it_wrote_into_unlocked_after_the_batch_holding_it(
    session: AsyncSession, session_factory: Factory, admin: psycopg.AsyncConnection
) -> None:
    """Batch 1 locks the studies its scene touches (X); an update then moves the scene into Y,
    which batch 3, taking another scene of Y, holds. Batch 1 links the scene into Y (the rule
    reads the committed footprint): its count of Y must wait for batch 3, so that both totals
    are exact (they were 1 and 1 for a study of 2 rows; found by a review)."""
    fx, dx = await _study(session, session_factory, square(10, 45, 0.5))
    fy, dy = await _study(session, session_factory, square(20, 45, 0.5))
    moved = await _item(admin, square(10, 45, 0.1))
    other = await _item(admin, square(20, 45, 0.1))
    async with UnitOfWork(session_factory) as b1:
        await b1.standing.fence_batch()
        items1 = await b1.standing.take_changes(limit=1)
        assert list(items1) == [moved]
        assert await b1.standing.lock_touched(items1, grace=GRACE) == [(fx, dx)]
        await admin.execute(
            "UPDATE archive_item SET footprint = ST_Translate(footprint, 10, 0) WHERE id = %s",
            (moved,),
        )
        async with UnitOfWork(session_factory) as b3:
            await b3.standing.fence_batch()
            items3 = await b3.standing.take_changes(limit=1)
            assert list(items3) == [other]
            assert await b3.standing.lock_touched(items3, grace=GRACE) == [(fy, dy)]
            assert await b3.standing.link_items(items3, grace=GRACE) == {(fy, dy): 1}
            assert await b3.standing.totals([(fy, dy)]) == {(fy, dy): 1}
            await b1.standing.unlink_stale(items1, grace=GRACE)  # not linked to X yet
            assert await b1.standing.link_items(items1, grace=GRACE) == {(fy, dy): 1}
            counting = asyncio.create_task(b1.standing.totals([(fy, dy)]))
            await asyncio.sleep(1.0)
            assert not counting.done(), "batch 1 counted Y while batch 3 held it"
            await b3.commit()
        assert await asyncio.wait_for(counting, timeout=30) == {(fy, dy): 2}
        await b1.commit()
    assert sorted(await linked_ids(admin, fy, dy)) == sorted([moved, other])
