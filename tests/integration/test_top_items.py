"""A study's top items (the flow's summary and artifact) on PostGIS: by coverage, largest first,
NULLs last, then newest, then by id; the same items whatever the limit, with ties on coverage,
NULL coverages and another study's rows beside them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from noctis.models import ArchiveItem, ArchiveLookupItem
from noctis.unit_of_work import UnitOfWork
from tests.support.factories import add_dream, add_finder, add_item, box

Factory = async_sessionmaker[AsyncSession]


async def test_the_top_items_are_the_first_of_the_full_order_at_every_limit(
    session: AsyncSession, session_factory: Factory
) -> None:
    rng = random.Random(7)
    dream = await add_dream(session, "top")
    other_dream = await add_dream(session, "another study")
    finder = await add_finder(session, box(10, 45, 11, 46))
    start = datetime(2024, 1, 1, 10, tzinfo=UTC)
    expected: list[tuple[float | None, datetime, int, str]] = []
    for n in range(40):
        # Few distinct values: ties on coverage (a repeated tile), and NULLs among them.
        coverage = rng.choice([None, 0.25, 0.5, 0.5, 0.75, 1.0])
        acquired = start + timedelta(days=rng.randrange(20))  # ties on the time too
        item: ArchiveItem = await add_item(session, box(10, 45, 10.5, 45.5), acquired)
        session.add(
            ArchiveLookupItem(
                dream_id=dream.id,
                imagery_finder_id=finder.id,
                archive_item_id=item.id,
                coverage=coverage,
            )
        )
        # The same scene in another study, ranked first there: never in this one's list.
        session.add(
            ArchiveLookupItem(
                dream_id=other_dream.id,
                imagery_finder_id=finder.id,
                archive_item_id=item.id,
                coverage=1.0 if n % 3 else None,
            )
        )
        expected.append((coverage, acquired, item.id, item.external_id))
    await session.commit()
    expected.sort(key=lambda e: (e[0] is None, -(e[0] or 0.0), -e[1].timestamp(), e[2]))

    for limit in [*range(0, 13), 25, 39, 40, 41, 100]:
        async with UnitOfWork(session_factory) as uow:
            top = await uow.lookups.top_items(finder_id=finder.id, dream_id=dream.id, limit=limit)
        assert [t.external_id for t in top] == [e[3] for e in expected[:limit]], limit
        assert [t.coverage for t in top] == [e[0] for e in expected[:limit]], limit


@pytest.mark.parametrize("coverages", [[None, None, 0.5], [0.5, 0.5, 0.5], []])
async def test_fewer_rows_than_the_limit_or_nulls_at_its_edge_give_every_row(
    session: AsyncSession, session_factory: Factory, coverages: list[float | None]
) -> None:
    dream = await add_dream(session, "few")
    finder = await add_finder(session, box(10, 45, 11, 46))
    for k, coverage in enumerate(coverages):
        item = await add_item(
            session, box(10, 45, 10.5, 45.5), datetime(2024, 1, 1 + k, tzinfo=UTC)
        )
        session.add(
            ArchiveLookupItem(
                dream_id=dream.id, imagery_finder_id=finder.id, archive_item_id=item.id,
                coverage=coverage,
            )
        )  # fmt: skip
    await session.commit()
    async with UnitOfWork(session_factory) as uow:
        top = await uow.lookups.top_items(finder_id=finder.id, dream_id=dream.id, limit=2)
    ranked = sorted(coverages, key=lambda c: (c is None, -(c or 0.0)))
    assert [t.coverage for t in top] == ranked[:2]
