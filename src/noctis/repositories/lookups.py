"""The lookup rows of a study: the set-based link step, the coverage and the study's items.

A study is one finder for one dream. Its lookup rows are written by ONE
``INSERT … SELECT … ON CONFLICT DO NOTHING`` built from the match rule of
:mod:`noctis.repositories.archive`; no archive row travels through Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, literal, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.models import ArchiveItem, ArchiveLookupItem
from noctis.repositories.archive import (
    CUSTOM_PLAN,
    MatchCriteria,
    coverage_expression,
    match_conditions,
)
from noctis.repositories.geo import suspect
from noctis.repositories.keys import of_study
from noctis.repositories.union import union_share

# Transaction-scoped, one round trip with the plan settings: concurrent runs of one study
# take turns, so each reports consistent counts.
_CUSTOM_PLAN_AND_STUDY_LOCK = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('jit', 'off', true), "
    "pg_advisory_xact_lock(hashtextextended('noctis.study:' || :finder || ':' || :dream, 0))"
)


@dataclass(frozen=True, slots=True)
class LinkResult:
    new: int
    total: int


@dataclass(frozen=True, slots=True)
class StudyItem:
    external_id: str
    collection: str
    acquired_at: datetime
    cloud_cover: float | None
    coverage: float | None


class LookupRepository:
    """The lookup rows of a study (a finder for a dream)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self, *, finder_id: int, dream_id: int) -> None:
        """Take the study's transaction-scoped advisory lock (and the plan settings): concurrent
        runs of one study take turns until COMMIT. Taking it again in the transaction is free."""
        async with translated(f"locking ImageryFinder {finder_id} for Dream {dream_id}"):
            await self._session.execute(
                _CUSTOM_PLAN_AND_STUDY_LOCK, {"finder": str(finder_id), "dream": str(dream_id)}
            )

    async def link(
        self, *, criteria: MatchCriteria, dream_id: int, locked: bool = False
    ) -> LinkResult:
        """Record every match for the dream in ONE ``INSERT … SELECT … ON CONFLICT DO NOTHING``.

        No archive row travels through Python. A transaction-scoped advisory lock
        per study (:meth:`lock`, taken here unless ``locked``) makes concurrent runs of the
        same study take turns, so each reports consistent counts. Returns how many rows are
        new and how many the study has in total.
        """
        finder_id = criteria.finder_id
        if not locked:
            await self.lock(finder_id=finder_id, dream_id=dream_id)
        matches = select(
            literal(dream_id, type_=ArchiveLookupItem.dream_id.type),
            literal(finder_id, type_=ArchiveLookupItem.imagery_finder_id.type),
            ArchiveItem.id,
            coverage_expression(criteria),
        ).where(*match_conditions(criteria))
        inserted = (
            insert(ArchiveLookupItem)
            .from_select(["dream_id", "imagery_finder_id", "archive_item_id", "coverage"], matches)
            .on_conflict_do_nothing(constraint="uq_archive_lookup_item_study_item")
            .returning(ArchiveLookupItem.id)
            .cte("inserted")
        )
        # The outer SELECT sees the snapshot from before the CTE's insert.
        existing = (
            select(func.count())
            .where(*of_study(ArchiveLookupItem, finder_id=finder_id, dream_id=dream_id))
            .scalar_subquery()
        )
        stmt = select(
            select(func.count()).select_from(inserted).scalar_subquery().label("new"),
            existing.label("existing"),
        )
        async with translated(f"linking ImageryFinder {finder_id} to Dream {dream_id}"):
            new, existing_count = (await self._session.execute(stmt)).one()
        return LinkResult(new=int(new), total=int(new) + int(existing_count))

    async def union_coverage(self, *, criteria: MatchCriteria, dream_id: int) -> float | None:
        """Fraction of the AOI covered by at least one linked item (None for a point AOI): one
        statement, :func:`noctis.repositories.union.union_share`."""
        if criteria.area_m2 is None or criteria.area_m2 <= 0:
            return None
        stmt = union_share(criteria, dream_id=dream_id)
        async with translated(f"computing the coverage of ImageryFinder {criteria.finder_id}"):
            await self._session.execute(CUSTOM_PLAN)
            return float((await self._session.execute(stmt)).scalar_one())

    async def suspect_count(self, *, finder_id: int, dream_id: int) -> int:
        """The study's items whose footprint has a non-finite coordinate (no coverage).

        Such a footprint never gets a coverage (:func:`~noctis.repositories.geo.clipped_share`
        gives NULL), so only the rows without one are joined to the archive and asked: a
        polygon study pays a read of its own rows, not a validity check of every footprint
        (country/5 years at 1M, 18,479 rows: 164 ms -> 11 ms, benchmarks/summary_reads.py). A
        point AOI's rows all lack a coverage, so each is asked, as before. A row keeps the
        coverage it was written with until a standing study refreshes it: a scene whose footprint
        turned non-finite after a closed study linked it is not counted.
        """
        stmt = (
            select(func.count())
            .select_from(ArchiveLookupItem)
            .join(ArchiveItem, ArchiveItem.id == ArchiveLookupItem.archive_item_id)
            .where(
                *of_study(ArchiveLookupItem, finder_id=finder_id, dream_id=dream_id),
                ArchiveLookupItem.coverage.is_(None),
                suspect(ArchiveItem.footprint),
            )
        )
        async with translated(f"counting the suspect items of ImageryFinder {finder_id}"):
            return int((await self._session.execute(stmt)).scalar_one())

    async def top_items(self, *, finder_id: int, dream_id: int, limit: int = 10) -> list[StudyItem]:
        """The study's items by coverage (largest first), then newest.

        Only the rows whose coverage reaches the ``limit``-th largest are joined to the archive
        and sorted (all of them when that one is NULL: fewer rows than ``limit``, or NULLs
        among the first): the same items, without reading every match's scene. Ties on
        coverage (the revisits of one tile) are all joined. A country over 5 years at 1M
        items (18,469 rows): 125 ms with every row joined, 19 ms so.
        """
        if limit <= 0:
            return []
        nth = (
            select(ArchiveLookupItem.coverage)
            .where(*of_study(ArchiveLookupItem, finder_id=finder_id, dream_id=dream_id))
            .order_by(ArchiveLookupItem.coverage.desc().nulls_last())
            .offset(limit - 1)
            .limit(1)
            .scalar_subquery()
        )
        stmt = (
            select(
                ArchiveItem.external_id,
                ArchiveItem.collection,
                ArchiveItem.acquired_at,
                ArchiveItem.cloud_cover,
                ArchiveLookupItem.coverage,
            )
            .join(ArchiveItem, ArchiveItem.id == ArchiveLookupItem.archive_item_id)
            .where(
                *of_study(ArchiveLookupItem, finder_id=finder_id, dream_id=dream_id),
                or_(nth.is_(None), ArchiveLookupItem.coverage >= nth),
            )
            .order_by(
                ArchiveLookupItem.coverage.desc().nulls_last(),
                ArchiveItem.acquired_at.desc(),
                ArchiveItem.id,
            )
            .limit(limit)
        )
        async with translated(f"listing the items of ImageryFinder {finder_id}"):
            rows = (await self._session.execute(stmt)).all()
        return [StudyItem(*row) for row in rows]

    async def footprints(self, *, finder_id: int, dream_id: int, limit: int = 5_000) -> list[bytes]:
        """The study's footprints as WKB, for maps (the largest coverage first)."""
        stmt = (
            select(func.ST_AsBinary(ArchiveItem.footprint))
            .select_from(ArchiveLookupItem)
            .join(ArchiveItem, ArchiveItem.id == ArchiveLookupItem.archive_item_id)
            .where(*of_study(ArchiveLookupItem, finder_id=finder_id, dream_id=dream_id))
            .order_by(ArchiveLookupItem.coverage.desc().nulls_last(), ArchiveItem.id)
            .limit(limit)
        )
        async with translated(f"reading the footprints of ImageryFinder {finder_id}"):
            return [bytes(row) for row in (await self._session.scalars(stmt)).all()]

    async def count(self, *, finder_id: int, dream_id: int) -> int:
        stmt = select(func.count()).where(
            *of_study(ArchiveLookupItem, finder_id=finder_id, dream_id=dream_id)
        )
        async with translated(f"counting the items of ImageryFinder {finder_id}"):
            return int((await self._session.execute(stmt)).scalar_one())
