"""Hand-made studies for the coverage plan tests, linked by the product's own use case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from noctis.db import make_engine, make_session_factory
from noctis.settings import Settings
from noctis.study import CheckedStudy, check_study, link_study
from noctis.unit_of_work import UnitOfWork
from tests.support.factories import add_dream, add_finder, add_item, box

JUNE = datetime(2024, 6, 10, 10, 30, tzinfo=UTC)
AOI = box(10.0, 45.0, 11.0, 46.0)
QUARTERS = [
    box(10.0, 45.0, 10.5, 45.5),
    box(10.5, 45.0, 11.0, 45.5),
    box(10.0, 45.5, 10.5, 46.0),
    box(10.5, 45.5, 11.0, 46.0),
]
NON_FINITE = (
    "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) SELECT "
    "'suspect', 's2', ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY[ST_MakePoint(10.1, 45.1), "
    "ST_MakePoint(10.9, 45.1), ST_MakePoint('Infinity'::float8, 45.9), "
    "ST_MakePoint(10.1, 45.9), ST_MakePoint(10.1, 45.1)])), 4326), '2024-06-12T10:00Z'"
)


@dataclass(frozen=True)
class GridStudy:
    finder_id: int
    dream_id: int
    clearest: list[str]
    """external_id of the clearest revisit of each quarter tile."""


async def seed_grid_study(session: AsyncSession, *, location: str = AOI) -> GridStudy:
    """Four quarter tiles of the AOI, each seen in June 2024 (30%, 5% and unknown cloud), small
    scenes inside, one scene elsewhere, one touching the AOI only and one with an Infinity
    coordinate (suspect: no coverage)."""
    dream = await add_dream(session, "plans")
    finder = await add_finder(session, location, start=date(2024, 1, 1), end=date(2024, 12, 31))
    clearest = []
    for q, tile in enumerate(QUARTERS):
        for day, cloud in enumerate((30.0, 5.0, None)):
            when = JUNE + timedelta(days=day)
            await add_item(session, tile, when, external_id=f"T{q}-{day}", cloud_cover=cloud)
        clearest.append(f"T{q}-1")
    for i in range(6):
        x = 10.1 + i * 0.13
        await add_item(session, box(x, 45.2, x + 0.1, 45.3), JUNE, external_id=f"small-{i}")
    await add_item(session, box(20, 45, 21, 46), JUNE, external_id="elsewhere")
    await add_item(session, box(11.0, 45.0, 11.5, 45.5), JUNE, external_id="touching")
    await session.execute(text(NON_FINITE))
    await session.commit()
    return GridStudy(finder.id, dream.id, clearest)


async def linked(
    factory: async_sessionmaker[AsyncSession], finder_id: int, dream_id: int
) -> CheckedStudy:
    """The study checked and linked (the flow's own use case)."""
    async with UnitOfWork(factory) as uow:
        study = await check_study(uow, finder_id=finder_id, dream_id=dream_id)
        await link_study(uow, study)
    return study


async def seed_linked_grid(settings: Settings, *, location: str = AOI) -> GridStudy:
    """:func:`seed_grid_study`, linked, on its own engine (for sync tests: ``asyncio.run``)."""
    engine = make_engine(settings, pool_size=1)
    try:
        factory = make_session_factory(engine)
        async with factory() as session:
            seeded = await seed_grid_study(session, location=location)
        await linked(factory, seeded.finder_id, seeded.dream_id)
        return seeded
    finally:
        await engine.dispose()


async def add_and_link(
    settings: Settings, study: GridStudy, tiles: list[str], when: datetime, *, prefix: str
) -> None:
    """Clear scenes of ``tiles`` acquired at ``when`` added to the archive, and the study linked
    again (the link step adds only the new rows)."""
    engine = make_engine(settings, pool_size=1)
    try:
        factory = make_session_factory(engine)
        async with factory() as session:
            for i, tile in enumerate(tiles):
                await add_item(session, tile, when, external_id=f"{prefix}-{i}", cloud_cover=0.0)
            await session.commit()
        await linked(factory, study.finder_id, study.dream_id)
    finally:
        await engine.dispose()
