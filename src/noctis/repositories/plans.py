"""A study's coverage plans: the candidate scenes read once, the plans stored and read back.

The candidates are the study's lookup rows with a positive ``coverage``: a footprint that only
touches the AOI adds nothing, and a suspect one (a non-finite coordinate: ``coverage`` is NULL)
has no coverage and so no place in a plan. Their footprints come as stored (WKB), in lookup row
order; the planner repairs an invalid one as :func:`~noctis.repositories.geo.clean_footprint`
does (GEOS' MakeValid, its polygonal part), once per distinct footprint rather than once per
row in SQL.

Storing replaces the study's plans of the same slicing (``per``) in one transaction, under a
transaction-scoped advisory lock per study, so two plans of one study written at once take
turns instead of failing on the unique constraint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, aggregate_order_by
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import FOREIGN_KEY_VIOLATION, sqlstate, translated
from noctis.errors import PlanOutdated
from noctis.models import ArchiveItem, ArchiveLookupItem, CoveragePlan, CoveragePlanItem
from noctis.repositories.keys import of_study

_NAN = literal(float("nan"), type_=DOUBLE_PRECISION)
_PLAN_LOCK = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('noctis.plan:' || :finder || ':' || :dream, 0))"
)


def _no_ids() -> npt.NDArray[np.int64]:
    return np.empty(0, dtype=np.int64)


def _no_floats() -> npt.NDArray[np.float64]:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Candidates:
    """The study's scenes a plan may take, column by column, in lookup row order."""

    lookup_ids: npt.NDArray[np.int64] = field(default_factory=_no_ids)
    acquired_s: npt.NDArray[np.float64] = field(default_factory=_no_floats)
    """Acquisition times, POSIX seconds."""
    cloud_cover: npt.NDArray[np.float64] = field(default_factory=_no_floats)
    """NaN where unknown."""
    footprints: list[bytes] = field(default_factory=list)
    """WKB as stored (the planner repairs an invalid one as :func:`geo.clean_footprint` does);
    scenes that share a footprint share one ``bytes`` object."""

    def __len__(self) -> int:
        return len(self.lookup_ids)


@dataclass(frozen=True, slots=True)
class PlannedItem:
    """What a plan shows of a scene it takes."""

    lookup_id: int
    archive_item_id: int
    external_id: str
    acquired_at: datetime
    cloud_cover: float | None


@dataclass(frozen=True, slots=True)
class StoredSlice:
    """One row of ``coverage_plan`` and its scenes: (lookup row id, gain m², covered m²)."""

    slice_start: date
    slice_end: date
    target: float
    min_gain_m2: float
    cloud_weight: float
    recency_weight: float
    candidates: int
    lower_bound: int
    target_m2: float
    union_m2: float
    aoi_m2: float
    reached: bool
    items: Sequence[tuple[int, float, float]] = ()

    @property
    def covered_m2(self) -> float:
        return self.items[-1][2] if self.items else 0.0


class PlanRepository:
    """The coverage plans of a study (a finder for a dream)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def candidates(self, *, finder_id: int, dream_id: int) -> Candidates:
        """The study's lookup rows with a positive coverage (module doc), in one row: the
        numbers packed in binary (``int8send``/``float8send``: network byte order) and the
        footprints as one array, scenes that share a footprint then sharing one ``bytes``
        object. Four arrays of values made a Python object per value: country/5 years at 5M
        items (88,333 rows) peaked 64 MiB over the process while read, 30 MiB so (the whole
        plan: +87 -> +63 MiB with :meth:`~noctis.cover.areas.Pieces.of` chunked)."""
        order = ArchiveLookupItem.id

        def packed(send: Any, column: Any) -> Any:
            return func.string_agg(send(column), aggregate_order_by(literal(b""), order))

        stmt = (
            select(
                packed(func.int8send, ArchiveLookupItem.id),
                packed(func.float8send, func.date_part("epoch", ArchiveItem.acquired_at)),
                packed(
                    func.float8send,
                    func.coalesce(cast(ArchiveItem.cloud_cover, DOUBLE_PRECISION), _NAN),
                ),
                func.array_agg(aggregate_order_by(func.ST_AsBinary(ArchiveItem.footprint), order)),
            )
            .join(ArchiveItem, ArchiveItem.id == ArchiveLookupItem.archive_item_id)
            .where(
                *of_study(ArchiveLookupItem, finder_id=finder_id, dream_id=dream_id),
                ArchiveLookupItem.coverage > 0,
            )
        )
        async with translated(f"reading the scenes of ImageryFinder {finder_id} to plan"):
            ids, at, cloud, wkbs = (await self._session.execute(stmt)).one()
        if ids is None:  # no row: string_agg gives NULL
            return Candidates()
        shared: dict[bytes, bytes] = {}
        return Candidates(
            lookup_ids=np.frombuffer(ids, dtype=">i8").astype(np.int64),
            acquired_s=np.frombuffer(at, dtype=">f8").astype(np.float64),
            cloud_cover=np.frombuffer(cloud, dtype=">f8").astype(np.float64),
            footprints=[shared.setdefault(w, w) for w in wkbs],
        )

    async def describe(self, lookup_ids: Sequence[int]) -> dict[int, PlannedItem]:
        """The scenes behind ``lookup_ids`` (a plan's), by lookup row id."""
        stmt = (
            select(
                ArchiveLookupItem.id,
                ArchiveItem.id,
                ArchiveItem.external_id,
                ArchiveItem.acquired_at,
                ArchiveItem.cloud_cover,
            )
            .join(ArchiveItem, ArchiveItem.id == ArchiveLookupItem.archive_item_id)
            .where(
                ArchiveLookupItem.id == any_(bindparam("ids", list(lookup_ids), ARRAY(BigInteger)))
            )
        )
        async with translated("reading the scenes of a coverage plan"):
            rows = (await self._session.execute(stmt)).all()
        return {int(r[0]): PlannedItem(*r) for r in rows}

    async def replace(
        self, *, finder_id: int, dream_id: int, per: str, slices: Sequence[StoredSlice]
    ) -> None:
        """Replace the study's stored plans of slicing ``per`` with ``slices``; no commit.

        Raises :class:`PlanOutdated` when a scene of ``slices`` lost its lookup row since the
        candidates were read (a standing batch removed it): the transaction is then aborted."""
        study = of_study(CoveragePlan, finder_id=finder_id, dream_id=dream_id)
        async with translated(f"storing the coverage plan of ImageryFinder {finder_id}"):
            await self._session.execute(
                _PLAN_LOCK, {"finder": str(finder_id), "dream": str(dream_id)}
            )
            await self._session.execute(delete(CoveragePlan).where(*study, CoveragePlan.per == per))
            if not slices:
                return
            rows = [
                {
                    "dream_id": dream_id,
                    "imagery_finder_id": finder_id,
                    "per": per,
                    "scenes": len(s.items),
                    "covered_m2": s.covered_m2,
                    **{k: getattr(s, k) for k in _PLAN_COLUMNS},
                }
                for s in slices
            ]
            ids = (
                await self._session.scalars(
                    insert(CoveragePlan).returning(CoveragePlan.id, sort_by_parameter_order=True),
                    rows,
                )
            ).all()
            items = [
                {
                    "coverage_plan_id": plan_id,
                    "rank": rank,
                    "archive_lookup_item_id": lookup_id,
                    "gain_m2": gain,
                    "covered_m2": covered,
                }
                for plan_id, s in zip(ids, slices, strict=True)
                for rank, (lookup_id, gain, covered) in enumerate(s.items, start=1)
            ]
            if not items:
                return
            try:
                await self._session.execute(insert(CoveragePlanItem), items)
            except IntegrityError as e:
                if sqlstate(e) == FOREIGN_KEY_VIOLATION:
                    raise PlanOutdated(finder_id, dream_id) from e
                raise

    async def discard(self, studies: Sequence[tuple[int, int]]) -> int:
        """Delete every stored plan of these studies ((finder id, dream id) pairs), their items
        with them (cascade); no commit. A standing batch that removed lookup rows of a study
        calls it in its transaction: a stored plan never names or counts scenes that are gone.
        Returns how many plan rows (slices) were deleted."""
        if not studies:
            return 0
        key = tuple_(CoveragePlan.imagery_finder_id, CoveragePlan.dream_id)
        stmt = delete(CoveragePlan).where(key.in_([tuple(s) for s in studies]))
        async with translated("deleting the coverage plans of studies that lost scenes"):
            result = await self._session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    async def count_items(self, *, finder_id: int, dream_id: int, per: str) -> int | None:
        """Scenes in the study's stored plans of slicing ``per``; None when none is stored."""
        stmt = select(func.count(CoveragePlan.id), func.coalesce(func.sum(CoveragePlan.scenes), 0))
        study = of_study(CoveragePlan, finder_id=finder_id, dream_id=dream_id)
        stmt = stmt.where(*study, CoveragePlan.per == per)
        async with translated(f"reading the coverage plan of ImageryFinder {finder_id}"):
            plans, scenes = (await self._session.execute(stmt)).one()
        return int(scenes) if plans else None


_PLAN_COLUMNS = (
    "slice_start",
    "slice_end",
    "target",
    "min_gain_m2",
    "cloud_weight",
    "recency_weight",
    "candidates",
    "lower_bound",
    "target_m2",
    "union_m2",
    "aoi_m2",
    "reached",
)
