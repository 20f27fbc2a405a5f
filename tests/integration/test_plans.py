"""Coverage plans on PostGIS: hand-made studies with known optima, the stored plan, its areas.

The flow's own use case links each study first (tests/support/plans.py).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from noctis import standing
from noctis.cover import Per, PlanOptions, Preference
from noctis.errors import PlanError, PlanOutdated
from noctis.models import ArchiveLookupItem, CoveragePlan, CoveragePlanItem
from noctis.plans import StudyPlan, plan_study
from noctis.repositories.plans import PlanRepository
from noctis.unit_of_work import UnitOfWork
from tests.support.factories import add_dream, add_finder, add_item, box
from tests.support.plans import AOI, JUNE, QUARTERS, linked, seed_grid_study

Factory = async_sessionmaker[AsyncSession]


async def _plan(factory: Factory, finder: int, dream: int, **options: object) -> StudyPlan:
    study = await linked(factory, finder, dream)
    async with UnitOfWork(factory) as uow:
        return await plan_study(uow, study, PlanOptions(**options))  # type: ignore[arg-type]


def _ids(planned: StudyPlan) -> list[str]:
    (only,) = planned.plan.slices
    return [planned.item(s.index).external_id for s in only.scenes]


async def test_a_grid_is_planned_as_its_four_clearest_tiles(
    session: AsyncSession, session_factory: Factory
) -> None:
    seeded = await seed_grid_study(session)
    planned = await _plan(session_factory, seeded.finder_id, seeded.dream_id)
    assert sorted(_ids(planned)) == seeded.clearest
    summary = planned.summary()
    assert (summary.scenes, summary.lower_bound, summary.reached) == (4, 4, True)
    # 16 matched items with coverage: the touching one (0) and the suspect one (NULL) are out.
    assert len(planned.candidates) == 12 + 6
    assert summary.coverage == pytest.approx(1.0, abs=1e-9)


async def test_the_plans_areas_are_the_spheroids(
    session: AsyncSession, session_factory: Factory
) -> None:
    seeded = await seed_grid_study(session, location=box(10.2, 45.2, 10.8, 45.8))
    planned = await _plan(session_factory, seeded.finder_id, seeded.dream_id)
    study = planned.study
    assert study.criteria.area_m2 is not None
    # Geography reads the box's parallels as great circles; the plan, as the match rule does,
    # as lines of latitude: within 0.02% on a 47 km box at 45°.
    assert planned.plan.aoi_m2 == pytest.approx(study.criteria.area_m2, rel=2e-4)
    async with UnitOfWork(session_factory) as uow:
        union = await uow.lookups.union_coverage(criteria=study.criteria, dream_id=study.dream_id)
    assert union == pytest.approx(planned.plan.aoi_share(planned.plan.union_m2), abs=2e-4)
    exact = (
        await session.execute(
            text(
                "SELECT ST_Area(ST_Transform(ST_Segmentize(location, 0.25), "
                "'+proj=cea +datum=WGS84 +units=m +no_defs')) FROM imagery_finder WHERE id = :f"
            ),
            {"f": seeded.finder_id},
        )
    ).scalar_one()
    assert planned.plan.aoi_m2 == pytest.approx(exact, rel=1e-9)  # the same projection as PROJ's


async def test_the_plan_is_stored_in_order_with_its_gains(
    session: AsyncSession, session_factory: Factory
) -> None:
    seeded = await seed_grid_study(session)
    planned = await _plan(session_factory, seeded.finder_id, seeded.dream_id)
    (row,) = (await session.scalars(select(CoveragePlan))).all()
    assert (row.per, row.slice_start, row.slice_end) == (
        "window",
        date(2024, 1, 1),
        date(2024, 12, 31),
    )
    assert (row.scenes, row.lower_bound, row.reached, row.candidates) == (4, 4, True, 18)
    assert (row.target, row.cloud_weight, row.recency_weight) == (0.99, 0.5, 0.1)
    assert row.covered_m2 == pytest.approx(planned.plan.slices[0].covered_m2)
    items = (
        await session.execute(
            select(CoveragePlanItem.rank, CoveragePlanItem.gain_m2, CoveragePlanItem.covered_m2)
            .where(CoveragePlanItem.coverage_plan_id == row.id)
            .order_by(CoveragePlanItem.rank)
        )
    ).all()
    assert [r.rank for r in items] == [1, 2, 3, 4]
    assert items[-1].covered_m2 == pytest.approx(sum(r.gain_m2 for r in items))


async def test_planning_again_replaces_only_the_plans_of_the_same_slicing(
    session: AsyncSession, session_factory: Factory
) -> None:
    seeded = await seed_grid_study(session)
    ids = (seeded.finder_id, seeded.dream_id)
    await _plan(session_factory, *ids)
    await _plan(session_factory, *ids, per=Per.parse("month"))
    await _plan(session_factory, *ids)
    await _plan(session_factory, *ids, per=Per.parse("month"), target=0.5)
    rows = (await session.execute(select(CoveragePlan.per, CoveragePlan.scenes))).all()
    assert sorted(rows) == [("month", 2), ("window", 4)]  # June alone: its one month
    assert await session.scalar(select(func.count()).select_from(CoveragePlanItem)) == 6


async def test_a_cloudy_scene_over_everything_against_clear_tiles(
    session: AsyncSession, session_factory: Factory
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, AOI)
    for q, tile in enumerate(QUARTERS):
        await add_item(session, tile, JUNE, external_id=f"clear-{q}", cloud_cover=0.0)
    await add_item(session, box(9.9, 44.9, 11.1, 46.1), JUNE, external_id="cloudy", cloud_cover=90)
    await session.commit()
    assert _ids(await _plan(session_factory, finder.id, dream.id)) == ["cloudy"]
    strong = await _plan(session_factory, finder.id, dream.id, preference=Preference(0.9))
    assert sorted(_ids(strong)) == [f"clear-{q}" for q in range(4)]


async def test_a_lookup_row_deleted_leaves_the_plan(
    session: AsyncSession, session_factory: Factory
) -> None:
    seeded = await seed_grid_study(session)
    await _plan(session_factory, seeded.finder_id, seeded.dream_id)
    await session.execute(
        delete(ArchiveLookupItem).where(ArchiveLookupItem.dream_id == seeded.dream_id)
    )
    await session.commit()
    assert await session.scalar(select(func.count()).select_from(CoveragePlanItem)) == 0


async def _racing_batches(
    session: AsyncSession, factory: Factory, monkeypatch: pytest.MonkeyPatch, races: int
) -> tuple[int, int]:
    """A standing study of the four quarter tiles; while each of its first ``races`` plans is
    computed (before it is stored), a standing batch removes one more of its tiles."""
    dream = await add_dream(session, "racing")
    finder = await add_finder(session, AOI)  # open-ended: it stands
    for q, tile in enumerate(QUARTERS):
        await add_item(session, tile, JUNE, external_id=f"Q{q}", cloud_cover=0.0)
    await session.commit()
    await linked(factory, finder.id, dream.id)
    real, moved = PlanRepository.replace, iter(range(races))

    async def replace(self: PlanRepository, **kwargs: Any) -> None:
        for q in moved:
            move = "UPDATE archive_item SET footprint = ST_Translate(footprint, 5, 0)"
            await session.execute(text(f"{move} WHERE external_id = 'Q{q}'"))
            await session.commit()
            report = await standing.match_pass(
                lambda: UnitOfWork(factory), batch=100, grace=timedelta(days=30), augur=None,
                give_up_after=timedelta(hours=1),
            )  # fmt: skip
            assert report.removed == 1
            break
        await real(self, **kwargs)

    monkeypatch.setattr(PlanRepository, "replace", replace)
    return finder.id, dream.id


async def test_a_plan_whose_scene_a_batch_removed_meanwhile_is_made_again(
    session: AsyncSession, session_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    finder, dream = await _racing_batches(session, session_factory, monkeypatch, races=1)
    planned = await _plan(session_factory, finder, dream)
    assert sorted(_ids(planned)) == ["Q1", "Q2", "Q3"]
    assert await session.scalar(select(func.count()).select_from(CoveragePlanItem)) == 3


async def test_a_plan_raced_twice_says_its_scenes_changed(
    session: AsyncSession, session_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    finder, dream = await _racing_batches(session, session_factory, monkeypatch, races=2)
    changed = f"ImageryFinder {finder} for Dream {dream}: its scenes changed while its coverage"
    with pytest.raises(PlanOutdated, match=f"{changed} plan was made .* run it again"):
        await _plan(session_factory, finder, dream)
    assert await session.scalar(select(func.count()).select_from(CoveragePlan)) == 0


async def test_a_study_with_nothing_matched_has_an_empty_plan(
    session: AsyncSession, session_factory: Factory
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, AOI)
    await session.commit()
    planned = await _plan(session_factory, finder.id, dream.id)
    assert planned.plan.slices == [] and planned.summary().scenes == 0
    assert await session.scalar(select(func.count()).select_from(CoveragePlan)) == 0


async def test_a_point_study_has_no_plan(session: AsyncSession, session_factory: Factory) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, "POINT(10.5 45.5)")
    await add_item(session, AOI, JUNE)
    await session.commit()
    with pytest.raises(PlanError, match=f"ImageryFinder {finder.id} has a Point location: cover"):
        await _plan(session_factory, finder.id, dream.id)


async def test_the_candidates_are_read_packed_as_stored(
    session: AsyncSession, session_factory: Factory
) -> None:
    """The packed read (binary numbers, one footprint array) gives what a plain read of the
    study's rows with a positive coverage gives, in lookup row order; an unknown cloud cover is
    NaN, and the revisits of a tile share one ``bytes`` object."""
    seeded = await seed_grid_study(session)
    await linked(session_factory, seeded.finder_id, seeded.dream_id)
    async with UnitOfWork(session_factory) as uow:
        got = await uow.plans.candidates(finder_id=seeded.finder_id, dream_id=seeded.dream_id)
    rows = (
        await session.execute(
            text(
                "SELECT l.id, date_part('epoch', a.acquired_at), a.cloud_cover, "
                "ST_AsBinary(a.footprint) FROM archive_lookup_item l "
                "JOIN archive_item a ON a.id = l.archive_item_id "
                "WHERE l.imagery_finder_id = :f AND l.dream_id = :d AND l.coverage > 0 "
                "ORDER BY l.id"
            ),
            {"f": seeded.finder_id, "d": seeded.dream_id},
        )
    ).all()
    assert len(rows) == len(got) == 18
    assert got.lookup_ids.tolist() == [r[0] for r in rows]
    assert got.acquired_s.tolist() == [r[1] for r in rows]
    unknown = [r[2] is None for r in rows]
    assert sum(unknown) == 4
    assert np.isnan(got.cloud_cover).tolist() == unknown
    assert [c for c, u in zip(got.cloud_cover.tolist(), unknown, strict=True) if not u] == [
        r[2] for r in rows if r[2] is not None
    ]
    assert got.footprints == [bytes(r[3]) for r in rows]
    assert len({id(f) for f in got.footprints}) == len(set(got.footprints)) == 4 + 6


async def test_a_study_without_candidates_reads_empty_arrays(
    session: AsyncSession, session_factory: Factory
) -> None:
    dream = await add_dream(session, "nothing")
    finder = await add_finder(session, AOI, start=date(2024, 1, 1), end=date(2024, 1, 2))
    await session.commit()
    async with UnitOfWork(session_factory) as uow:
        got = await uow.plans.candidates(finder_id=finder.id, dream_id=dream.id)
    assert len(got) == 0
    assert (got.lookup_ids.dtype, got.cloud_cover.dtype) == (
        np.dtype(np.int64),
        np.dtype(np.float64),
    )
    assert got.footprints == []
