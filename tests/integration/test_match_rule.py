"""The match rule and the link step on a real PostGIS."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from noctis.errors import DreamNotFound, FinderNotFound
from noctis.models import ArchiveLookupItem
from noctis.study import CheckedStudy, check_study, link_study
from noctis.unit_of_work import UnitOfWork
from tests.support.factories import add_dream, add_finder, add_item, box, square

AOI = square(10.0, 45.0, 0.5)  # a ~110 km square in the Alps
JUNE = datetime(2024, 6, 15, 10, 30, tzinfo=UTC)


async def _study(
    factory: async_sessionmaker[AsyncSession], finder_id: int, dream_id: int
) -> CheckedStudy:
    async with UnitOfWork(factory) as uow:
        return await check_study(uow, finder_id=finder_id, dream_id=dream_id)


async def _matched(
    factory: async_sessionmaker[AsyncSession], finder_id: int, dream_id: int
) -> set[str]:
    study = await _study(factory, finder_id, dream_id)
    async with UnitOfWork(factory) as uow:
        return {i.external_id for i in await uow.archive.search(study.criteria)}


async def _linked(
    factory: async_sessionmaker[AsyncSession], finder_id: int, dream_id: int
) -> tuple[int, int]:
    study = await _study(factory, finder_id, dream_id)
    async with UnitOfWork(factory) as uow:
        result = await link_study(uow, study)
    return result.new, result.total


async def test_polygon_aoi_matches_intersecting_footprints_only(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, AOI)
    await add_item(session, square(10.4, 45.4, 0.2), external_id="overlaps-corner")
    await add_item(session, square(10.0, 45.0, 2.0), external_id="contains-aoi")
    await add_item(session, square(10.0, 45.0, 0.1), external_id="inside-aoi")
    await add_item(session, square(12.0, 45.0, 0.2), external_id="east-of-aoi")
    await session.commit()
    assert await _matched(session_factory, finder.id, dream.id) == {
        "overlaps-corner",
        "contains-aoi",
        "inside-aoi",
    }


async def test_point_aoi_matches_footprints_containing_it(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, "POINT(2.35 48.85)")
    await add_item(session, square(2.3, 48.8, 0.2), external_id="paris-tile")
    await add_item(session, square(3.5, 48.8, 0.2), external_id="elsewhere")
    await session.commit()
    assert await _matched(session_factory, finder.id, dream.id) == {"paris-tile"}


async def test_footprints_touching_the_aoi_edge_match_as_st_intersects_says(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, box(0, 0, 1, 1))
    await add_item(session, box(1, 0, 2, 1), external_id="shares-an-edge")
    await add_item(session, box(1, 1, 2, 2), external_id="shares-a-corner")
    await add_item(session, box(1.000001, 0, 2, 1), external_id="a-hair-apart")
    await session.commit()
    assert await _matched(session_factory, finder.id, dream.id) == {
        "shares-an-edge",
        "shares-a-corner",
    }


ANTIMERIDIAN_SPLIT = (
    "MULTIPOLYGON(((179.5 -17, 180 -17, 180 -18, 179.5 -18, 179.5 -17)),"
    "((-180 -17, -179.5 -17, -179.5 -18, -180 -18, -180 -17)))"
)


@pytest.mark.parametrize(
    ("aoi", "matches"),
    [
        ("POINT(179.8 -17.5)", True),  # Fiji, west of the antimeridian
        ("POINT(-179.8 -17.5)", True),  # east of it
        (square(-179.7, -17.5, 0.1), True),
        ("POINT(0 -17.5)", False),  # the split must not smear the scene across the globe
        (square(0, -17.5, 1.0), False),
    ],
)
async def test_antimeridian_split_footprint_matches_from_both_sides_only(
    session: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
    aoi: str,
    matches: bool,
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, aoi)
    await add_item(session, ANTIMERIDIAN_SPLIT, external_id="fiji-split")
    await session.commit()
    expected = {"fiji-split"} if matches else set()
    assert await _matched(session_factory, finder.id, dream.id) == expected


async def test_window_includes_first_and_last_whole_utc_days(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, AOI, start=date(2024, 3, 1), end=date(2024, 3, 31))
    fp = square(10, 45, 0.2)
    first = datetime(2024, 3, 1, 0, 0, 0, tzinfo=UTC)
    after_end = datetime(2024, 4, 1, 0, 0, 0, tzinfo=UTC)
    await add_item(session, fp, first, external_id="first-instant")
    await add_item(session, fp, after_end - timedelta(microseconds=1), external_id="last-instant")
    await add_item(session, fp, after_end, external_id="day-after-midnight")
    await add_item(session, fp, after_end + timedelta(seconds=1), external_id="second-past-end")
    await add_item(session, fp, first - timedelta(seconds=1), external_id="second-before")
    # 23:30 on the last day in New York is already the next UTC day.
    await add_item(
        session,
        fp,
        datetime(2024, 3, 31, 23, 30, tzinfo=UTC) + timedelta(hours=4),
        external_id="next-utc-day",
    )
    await session.commit()
    assert await _matched(session_factory, finder.id, dream.id) == {
        "first-instant",
        "last-instant",
    }


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, {"2019", "2022", "2025"}),
        (date(2022, 1, 1), None, {"2022", "2025"}),
        (None, date(2022, 12, 31), {"2019", "2022"}),
    ],
)
async def test_open_ended_windows(
    session: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
    start: date | None,
    end: date | None,
    expected: set[str],
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, AOI, start=start, end=end)
    for year in (2019, 2022, 2025):
        when = datetime(year, 6, 1, tzinfo=UTC)
        await add_item(session, square(10, 45, 0.2), when, external_id=str(year))
    await session.commit()
    assert await _matched(session_factory, finder.id, dream.id) == expected


async def test_cloud_filter_excludes_cloudier_and_unknown_cover(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, AOI, max_cloud_cover=20)
    fp = square(10, 45, 0.2)
    await add_item(session, fp, cloud_cover=0, external_id="clear")
    await add_item(session, fp, cloud_cover=20, external_id="at-limit")
    await add_item(session, fp, cloud_cover=20.5, external_id="cloudier")
    await add_item(session, fp, cloud_cover=None, external_id="unknown")
    unfiltered = await add_finder(session, AOI)
    await session.commit()
    assert await _matched(session_factory, finder.id, dream.id) == {"clear", "at-limit"}
    assert len(await _matched(session_factory, unfiltered.id, dream.id)) == 4


async def test_collections_filter(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, AOI, collections=["planet-skysat", "maxar-wv3"])
    fp = square(10, 45, 0.2)
    await add_item(session, fp, collection="sentinel-2-l2a", external_id="s2")
    await add_item(session, fp, collection="planet-skysat", external_id="sky")
    await add_item(session, fp, collection="maxar-wv3", external_id="wv3")
    await session.commit()
    assert await _matched(session_factory, finder.id, dream.id) == {"sky", "wv3"}


async def test_link_is_idempotent_and_reports_new_and_total(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, AOI)
    for i in range(3):
        await add_item(session, square(10, 45, 0.1 + i / 10), external_id=f"i{i}")
    await session.commit()
    assert await _linked(session_factory, finder.id, dream.id) == (3, 3)
    assert await _linked(session_factory, finder.id, dream.id) == (0, 3)
    await add_item(session, square(10, 45, 0.4), external_id="late-arrival")
    await session.commit()
    assert await _linked(session_factory, finder.id, dream.id) == (1, 4)


async def test_two_dreams_sharing_a_finder_get_their_own_rows(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    first, second = await add_dream(session, "first"), await add_dream(session, "second")
    finder = await add_finder(session, AOI)
    await add_item(session, square(10, 45, 0.2))
    await add_item(session, square(10.2, 45, 0.2))
    await session.commit()
    assert await _linked(session_factory, finder.id, first.id) == (2, 2)
    assert await _linked(session_factory, finder.id, second.id) == (2, 2)
    rows = (await session.execute(select(ArchiveLookupItem.dream_id))).scalars().all()
    assert sorted(rows) == [first.id, first.id, second.id, second.id]


async def test_coverage_is_the_share_of_the_aoi_on_the_spheroid(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, box(0, 0, 1, 1))
    await add_item(session, box(-1, -1, 2, 2), external_id="all")
    await add_item(session, box(0, 0, 0.5, 1), external_id="west-half")
    await add_item(session, box(0.9, 0.9, 3, 3), external_id="corner")
    point_finder = await add_finder(session, "POINT(0.5 0.5)")
    await session.commit()
    await _linked(session_factory, finder.id, dream.id)
    await _linked(session_factory, point_finder.id, dream.id)
    rows = await session.execute(
        select(ArchiveLookupItem.imagery_finder_id, ArchiveLookupItem.coverage).order_by(
            ArchiveLookupItem.coverage.desc()
        )
    )
    by_finder: dict[int, list[float | None]] = {}
    for finder_id, coverage in rows:
        by_finder.setdefault(finder_id, []).append(coverage)
    full, half, corner = by_finder[finder.id]
    assert full == pytest.approx(1.0)
    assert half == pytest.approx(0.5, abs=1e-3)  # meridians split area evenly
    assert corner == pytest.approx(0.01, rel=0.01)
    assert by_finder[point_finder.id] == [None, None]


async def test_link_is_one_insert_select_statement(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """No archive row travels through Python: the link step is one INSERT … SELECT."""
    from sqlalchemy import event

    dream = await add_dream(session)
    finder = await add_finder(session, AOI)
    await add_item(session, square(10, 45, 0.2))
    await session.commit()
    study = await _study(session_factory, finder.id, dream.id)
    statements: list[str] = []
    engine = session_factory.kw["bind"].sync_engine

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        async with UnitOfWork(session_factory) as uow:
            await uow.lookups.link(criteria=study.criteria, dream_id=dream.id)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    inserts = [s for s in statements if "INSERT" in s.upper()]
    assert len(inserts) == 1
    assert "INSERT INTO archive_lookup_item" in inserts[0]
    assert "SELECT" in inserts[0] and "ON CONFLICT" in inserts[0]
    assert "ST_Intersects(archive_item.footprint" in inserts[0]


async def test_unknown_finder_and_dream_are_named(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, AOI)
    await session.commit()
    with pytest.raises(FinderNotFound, match=r"^ImageryFinder 999 does not exist$") as missing:
        await _study(session_factory, 999, dream.id)
    assert missing.value.id == 999
    with pytest.raises(DreamNotFound, match=r"^Dream 999 does not exist$"):
        await _study(session_factory, finder.id, 999)


async def test_unit_of_work_rolls_back_uncommitted_work_by_default(
    session: AsyncSession, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, AOI)
    await add_item(session, square(10, 45, 0.2))
    await session.commit()
    study = await _study(session_factory, finder.id, dream.id)
    async with UnitOfWork(session_factory) as uow:
        result = await uow.lookups.link(criteria=study.criteria, dream_id=dream.id)
        assert result.new == 1
    async with UnitOfWork(session_factory) as uow:
        assert await uow.lookups.count(finder_id=finder.id, dream_id=dream.id) == 0
