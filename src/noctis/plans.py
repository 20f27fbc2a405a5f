"""Coverage plans of a study, as plain async functions (no Prefect here).

:func:`plan_study` reads the study's candidate scenes (its lookup rows with a positive
coverage), makes one greedy plan per time slice (:func:`noctis.cover.make_plan`, in a worker
thread: it is CPU-bound, and shapely releases the GIL), stores it in ``coverage_plan`` /
``coverage_plan_item`` (replacing the study's plans of the same slicing) and commits. A study
whose AOI is a point has no coverage and so no plan: :class:`~noctis.errors.PlanError`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import shapely

from noctis.cover import Plan, PlanOptions, PlanSummary, Scenes, SlicePlan, make_plan
from noctis.errors import PlanError, PlanOutdated
from noctis.repositories import Candidates, PlannedItem, StoredSlice
from noctis.study import CheckedStudy
from noctis.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class StudyPlan:
    """A study's plan, and the scenes it takes (by lookup row id)."""

    study: CheckedStudy
    plan: Plan
    candidates: Candidates
    items: dict[int, PlannedItem]

    def item(self, index: int) -> PlannedItem:
        """The scene at ``index`` of :attr:`candidates`."""
        return self.items[int(self.candidates.lookup_ids[index])]

    def summary(self) -> PlanSummary:
        """Size and coverage of the plan (a plan per slice: all slices together)."""
        slices = self.plan.slices
        covered = sum(s.covered_m2 for s in slices)
        share = self.plan.share(covered) if len(slices) == 1 else None
        return PlanSummary(
            scenes=sum(len(s.scenes) for s in slices),
            coverage=self.plan.aoi_share(covered),
            share=share if slices else None,
            lower_bound=max((s.lower_bound for s in slices), default=0),
            reached=all(s.reached for s in slices),
        )

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values (``noctis plan --json``)."""
        plan = self.plan
        return {
            "imagery_finder_pk": self.study.finder_id,
            "dream_pk": self.study.dream_id,
            "per": str(plan.options.per),
            "target": plan.options.target,
            "candidates": len(self.candidates),
            "aoi_m2": plan.aoi_m2,
            "union_m2": plan.union_m2,
            "union_coverage": plan.aoi_share(plan.union_m2),
            "seconds": round(plan.seconds, 3),
            "slices": [self._slice(s) for s in plan.slices],
        }

    def _slice(self, part: SlicePlan) -> dict[str, Any]:
        return {
            "first_day": part.slice.first.isoformat(),
            "last_day": part.slice.last.isoformat(),
            "candidates": part.candidates,
            "scenes": len(part.scenes),
            "lower_bound": part.lower_bound,
            "covered_m2": part.covered_m2,
            "share": self.plan.share(part.covered_m2),
            "coverage": self.plan.aoi_share(part.covered_m2),
            "reached": part.reached,
            "items": [
                {
                    "rank": rank,
                    "archive_item_id": item.archive_item_id,
                    "external_id": item.external_id,
                    "acquired_at": item.acquired_at.isoformat(),
                    "cloud_cover": item.cloud_cover,
                    "gain_m2": scene.gain_m2,
                }
                for rank, scene in enumerate(part.scenes, start=1)
                for item in (self.item(scene.index),)
            ],
        }


async def plan_in_link(uow: UnitOfWork, study: CheckedStudy) -> PlanSummary | None:
    """The link step's planner (:func:`noctis.study.link_study`): the whole window's plan,
    inside the link transaction; None for a point AOI, which has no coverage and so no plan."""
    if study.criteria.area_m2 is None or study.criteria.area_m2 <= 0:
        return None
    return (await plan_study(uow, study, in_transaction=True)).summary()


def check_plannable(study: CheckedStudy) -> None:
    """Raise :class:`PlanError` for a study whose AOI has no area (a point: no coverage)."""
    if study.criteria.area_m2 is None or study.criteria.area_m2 <= 0:
        raise PlanError(
            f"ImageryFinder {study.finder_id} has a {study.location_type} location: coverage is "
            "undefined for points, so there is no coverage plan (plans need a Polygon or "
            "MultiPolygon AOI)"
        )


async def plan_study(
    uow: UnitOfWork,
    study: CheckedStudy,
    options: PlanOptions | None = None,
    *,
    in_transaction: bool = False,
) -> StudyPlan:
    """Plan the study (module doc), store the plan and commit.

    ``in_transaction``: plan inside the caller's open transaction (the link step, so that the
    rows, the plan and the ``completed`` notification that reports it commit together), and
    leave the commit to the caller.

    On its own transaction, a plan whose scenes a standing batch removed while it was computed
    (:class:`PlanOutdated`) is made once more from the scenes as they are then; a second such
    race raises it. Inside the caller's transaction it raises at once (the transaction is
    aborted).
    """
    options = options or PlanOptions()
    check_plannable(study)
    if in_transaction:
        return await _plan_and_store(uow, study, options, in_transaction=True)
    try:
        return await _plan_and_store(uow, study, options, in_transaction=False)
    except PlanOutdated:
        await uow.rollback()
        return await _plan_and_store(uow, study, options, in_transaction=False)


async def _plan_and_store(
    uow: UnitOfWork, study: CheckedStudy, options: PlanOptions, *, in_transaction: bool
) -> StudyPlan:
    ids = {"finder_id": study.finder_id, "dream_id": study.dream_id}
    candidates = await uow.plans.candidates(**ids)
    if not in_transaction:
        await uow.rollback()  # no transaction stays open while the plan is computed
    aoi = shapely.from_wkb(bytes(study.criteria.location.data))
    scenes = Scenes(
        keys=candidates.lookup_ids,
        acquired_s=candidates.acquired_s,
        cloud_cover=candidates.cloud_cover,
        footprints=candidates.footprints,
    )
    window = (study.window.start_date, study.window.end_date)
    plan = await asyncio.to_thread(make_plan, scenes, aoi, window, options)
    stored = [_stored(s, plan, candidates) for s in plan.slices]
    await uow.plans.replace(**ids, per=str(options.per), slices=stored)
    picked = [item[0] for s in stored for item in s.items]
    items = await uow.plans.describe(picked)
    if not in_transaction:
        await uow.commit()
    return StudyPlan(study=study, plan=plan, candidates=candidates, items=items)


def _stored(part: SlicePlan, plan: Plan, candidates: Candidates) -> StoredSlice:
    options, covered, items = plan.options, 0.0, []
    for scene in part.scenes:
        covered += scene.gain_m2
        items.append((int(candidates.lookup_ids[scene.index]), scene.gain_m2, covered))
    return StoredSlice(
        slice_start=part.slice.first,
        slice_end=part.slice.last,
        target=options.target,
        min_gain_m2=options.min_gain * plan.union_m2,
        cloud_weight=options.preference.cloud_weight,
        recency_weight=options.preference.recency_weight,
        candidates=part.candidates,
        lower_bound=part.lower_bound,
        target_m2=part.target_m2,
        union_m2=plan.union_m2,
        aoi_m2=plan.aoi_m2,
        reached=part.reached,
        items=items,
    )
