"""The flow plans the whole window after linking: its size and coverage in the result, the
artifact, the event and Augur's ``completed`` notification; the plan stored. A point AOI has no
coverage and so no plan, and the run still completes."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.flows.imagery_finder_study import imagery_finder_study
from noctis.models import CoveragePlan
from noctis.settings import Settings
from tests.support.augur_stub import AugurStub
from tests.support.factories import add_dream, add_finder, add_item
from tests.support.plans import JUNE, seed_grid_study


async def test_the_completed_notification_carries_the_plans_size_and_coverage(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    seeded = await seed_grid_study(session)
    result = await imagery_finder_study(
        imagery_finder_pk=seeded.finder_id, dream_pk=seeded.dream_id
    )
    assert (result.plan_scenes, result.plan_lower_bound) == (4, 4)
    assert result.plan_coverage == pytest.approx(1.0, abs=1e-9)
    assert result.plan_share == pytest.approx(1.0, abs=1e-9)
    (note,) = [r.json for r in augur_stub.requests]
    assert (note["plan_scenes"], note["plan_coverage"]) == (4, result.plan_coverage)
    (stored,) = (await session.scalars(select(CoveragePlan))).all()
    assert (stored.per, stored.scenes, stored.reached) == ("window", 4, True)
    assert (stored.slice_start, stored.slice_end) == (date(2024, 1, 1), date(2024, 12, 31))


async def test_a_point_study_completes_with_no_plan(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, "POINT(10.5 45.5)")
    await add_item(session, "POLYGON((10 45, 11 45, 11 46, 10 46, 10 45))", JUNE)
    await session.commit()
    result = await imagery_finder_study(imagery_finder_pk=finder.id, dream_pk=dream.id)
    assert result.matched_count == 1
    assert (result.plan_scenes, result.plan_coverage, result.plan_lower_bound) == (None,) * 3
    (note,) = [r.json for r in augur_stub.requests]
    assert (note["plan_scenes"], note["plan_coverage"]) == (None, None)
    assert (await session.scalars(select(CoveragePlan))).all() == []


async def test_a_polygon_study_with_no_match_has_a_plan_of_no_scene(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, "POLYGON((10 45, 11 45, 11 46, 10 46, 10 45))")
    await session.commit()
    result = await imagery_finder_study(imagery_finder_pk=finder.id, dream_pk=dream.id)
    assert (result.plan_scenes, result.plan_coverage) == (0, 0.0)
    (note,) = [r.json for r in augur_stub.requests]
    assert note["plan_scenes"] == 0
