"""The notebook helpers: async and sync, inside and outside a running event loop."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.errors import InvalidFinder
from noctis.notebook import finder_matches, matches, open_uow
from noctis.settings import Settings
from tests.support.factories import add_dream, add_finder, add_item, square


async def _seed(session: AsyncSession) -> int:
    await add_dream(session)
    finder = await add_finder(session, square(10, 45, 0.5))
    await add_item(session, square(10, 45, 0.2), external_id="hit")
    await add_item(session, square(30, 45, 0.2), external_id="miss")
    await session.commit()
    return finder.id


async def test_async_path_with_top_level_await(
    atlas_settings: Settings, session: AsyncSession
) -> None:
    finder = await _seed(session)
    items = await finder_matches(finder, settings=atlas_settings)
    assert [i.external_id for i in items] == ["hit"]
    async with open_uow(atlas_settings) as uow:
        assert (await uow.finders.get(finder)).id == finder


async def test_sync_path_works_inside_a_running_loop_like_jupyter(
    atlas_settings: Settings, session: AsyncSession
) -> None:
    finder = await _seed(session)
    assert asyncio.get_running_loop() is not None
    assert [i.external_id for i in matches(finder, settings=atlas_settings)] == ["hit"]


def test_sync_path_works_in_plain_python(atlas_settings: Settings) -> None:
    async def seed() -> int:
        async with open_uow(atlas_settings) as uow:
            finder = await _seed(uow.session)
            return finder

    finder = asyncio.run(seed())
    assert [i.external_id for i in matches(finder, settings=atlas_settings)] == ["hit"]


@pytest.mark.parametrize(
    ("finder_kwargs", "reason"),
    [
        ({"start": date(2024, 5, 2), "end": date(2024, 5, 1)}, "starts after it ends"),
        ({"collections": []}, "has an empty collections list"),
    ],
    ids=["inverted-window", "empty-collections"],
)
async def test_notebook_refuses_what_the_flow_refuses(
    atlas_settings: Settings, session: AsyncSession, finder_kwargs: dict[str, object], reason: str
) -> None:
    """One finder check: the notebook helpers and the flow share check_finder."""
    await add_dream(session)
    if "start" in finder_kwargs:  # the schema's CHECK refuses it: a copy of Atlas without it
        from sqlalchemy import text

        await session.execute(
            text("ALTER TABLE imagery_finder DROP CONSTRAINT ck_imagery_finder_start_before_end")
        )
    finder = await add_finder(session, square(10, 45, 0.5), **finder_kwargs)  # type: ignore[arg-type]
    await session.commit()
    with pytest.raises(InvalidFinder, match=f"^ImageryFinder {finder.id} {reason}"):
        await finder_matches(finder.id, settings=atlas_settings)
