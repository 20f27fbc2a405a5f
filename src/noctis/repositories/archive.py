"""The match rule and the archive search: what "matches" means, in one place.

An archive item matches a finder when its footprint intersects the finder's
location (``ST_Intersects``, so touching counts; a footprint with a non-finite
coordinate, which GEOS cannot test, by its bounding box:
:func:`noctis.repositories.geo.intersects`) and it was acquired in
``[start_date 00:00 UTC, end_date + 1 day 00:00 UTC)``; a null date leaves that
side open. ``max_cloud_cover`` excludes cloudier items and items of unknown
cloud cover; ``collections`` keeps only those collections.

The plan matters more than anything else here. The AOI and the window are
bound as parameters so that the planner sees their values, and every statement
runs with ``plan_cache_mode = force_custom_plan`` for its transaction: asyncpg
prepares statements and PostgreSQL would otherwise switch to a generic plan
after five executions, which cannot see how small (or how large) the AOI is.
benchmarks/RESULTS.md has the measurements behind this choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    REAL,
    ColumnElement,
    DateTime,
    Text,
    any_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.models import ArchiveItem, ArchiveLookupItem
from noctis.repositories.geo import clipped_share, intersects

# Run before every statement of the match rule, for its transaction only: a custom plan for
# every execution (module doc), and no JIT: it compiles calls into PostGIS' C functions that
# it cannot speed up, on every execution (benchmarks/RESULTS.md, finding 4).
CUSTOM_PLAN = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('jit', 'off', true)"
)


@dataclass(frozen=True, slots=True)
class MatchCriteria:
    """A checked finder, ready to match: the AOI, the half-open window and the filters."""

    finder_id: int
    location: WKBElement
    start: datetime | None
    end: datetime | None
    max_cloud_cover: float | None = None
    collections: tuple[str, ...] | None = None
    area_m2: float | None = None
    """The AOI's spheroidal area; None for a point AOI (coverage is then null)."""


def aoi_param(criteria: MatchCriteria) -> ColumnElement[bytes]:
    return bindparam("aoi", criteria.location, type_=Geometry(srid=4326))


@dataclass(frozen=True, slots=True)
class FinderTerms:
    """The finder's side of the match rule as SQL: bound values for one study
    (:func:`bound_terms`), or a table's columns for many at once (the standing studies,
    :func:`column_terms`). A term of None leaves that filter out; with ``nullable``, a NULL
    value in a column leaves it out too, as a null date or filter does on the finder."""

    aoi: ColumnElement[Any]
    start: ColumnElement[Any] | None = None
    end: ColumnElement[Any] | None = None
    max_cloud_cover: ColumnElement[Any] | None = None
    collections: ColumnElement[Any] | None = None
    area_m2: ColumnElement[Any] | float | None = None
    nullable: bool = False


def bound_terms(criteria: MatchCriteria) -> FinderTerms:
    """One checked finder, bound as parameters (only the filters it sets)."""
    collections = None
    if criteria.collections is not None:
        # One array parameter, whatever its length: IN (...) binds one parameter per name and
        # PostgreSQL takes at most 32,767.
        names = list(criteria.collections)
        collections = bindparam("collections", names, type_=ARRAY(Text))
    return FinderTerms(
        aoi=aoi_param(criteria),
        start=None if criteria.start is None else literal(criteria.start, DateTime(timezone=True)),
        end=None if criteria.end is None else literal(criteria.end, DateTime(timezone=True)),
        max_cloud_cover=(
            None if criteria.max_cloud_cover is None else literal(criteria.max_cloud_cover, REAL)
        ),
        collections=collections,
        area_m2=criteria.area_m2,
    )


def column_terms(
    *,
    aoi: ColumnElement[Any],
    start: ColumnElement[Any],
    end: ColumnElement[Any],
    max_cloud_cover: ColumnElement[Any],
    collections: ColumnElement[Any],
    area_m2: ColumnElement[Any],
) -> FinderTerms:
    """Finders held in a table's columns (null = that side or filter open)."""
    return FinderTerms(aoi, start, end, max_cloud_cover, collections, area_m2, nullable=True)


def match_predicate(terms: FinderTerms) -> list[ColumnElement[bool]]:
    """THE match rule, as SQL conditions on ``archive_item`` for the finder ``terms``."""
    conditions: list[ColumnElement[bool]] = [intersects(ArchiveItem.footprint, terms.aoi)]

    def add(term: ColumnElement[Any] | None, condition: ColumnElement[bool]) -> None:
        if term is not None:
            conditions.append(or_(term.is_(None), condition) if terms.nullable else condition)

    if terms.start is not None:
        add(terms.start, ArchiveItem.acquired_at >= terms.start)
    if terms.end is not None:
        add(terms.end, ArchiveItem.acquired_at < terms.end)
    if terms.max_cloud_cover is not None:
        # NULL cloud cover fails the comparison, so unknown cover is excluded too.
        add(terms.max_cloud_cover, ArchiveItem.cloud_cover <= terms.max_cloud_cover)
    if terms.collections is not None:
        add(terms.collections, ArchiveItem.collection == any_(terms.collections))
    return conditions


def match_conditions(criteria: MatchCriteria) -> list[ColumnElement[bool]]:
    """The match rule as SQL conditions on ``archive_item`` (only the filters that apply)."""
    return match_predicate(bound_terms(criteria))


def terms_coverage(terms: FinderTerms) -> ColumnElement[float | None]:
    """THE coverage rule: area(footprint ∩ AOI) / area(AOI) on the spheroid, the AOI's area
    computed once (when the finder is checked); NULL for a point AOI (no area).

    :func:`~noctis.repositories.geo.clipped_share` keeps one invalid or antimeridian-split
    footprint from failing the statement, and gives a non-finite one NULL.
    """
    area = terms.area_m2
    if area is None or (isinstance(area, float | int) and area <= 0):
        return literal(None, type_=ArchiveLookupItem.coverage.type)
    share = clipped_share(ArchiveItem.footprint, terms.aoi, aoi_area=area)
    if isinstance(area, float | int):
        return share
    # A column: a point AOI has a NULL area, and LEAST(1, NULL) would be 1.
    return case((or_(area.is_(None), area <= 0), literal(None)), else_=share)


def coverage_expression(criteria: MatchCriteria) -> ColumnElement[float | None]:
    """The coverage of one checked finder (:func:`terms_coverage`)."""
    return terms_coverage(bound_terms(criteria))


class ArchiveRepository:
    """Reads the archive: the match for notebooks and checks."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def search(
        self, criteria: MatchCriteria, *, limit: int | None = None
    ) -> Sequence[ArchiveItem]:
        """The matching items, newest first."""
        stmt = (
            select(ArchiveItem)
            .where(*match_conditions(criteria))
            .order_by(ArchiveItem.acquired_at.desc(), ArchiveItem.id)
            .limit(limit)
        )
        async with translated(f"searching the archive for ImageryFinder {criteria.finder_id}"):
            await self._session.execute(CUSTOM_PLAN)
            return (await self._session.scalars(stmt)).all()

    async def count(self, criteria: MatchCriteria) -> int:
        stmt = select(func.count()).select_from(ArchiveItem).where(*match_conditions(criteria))
        async with translated(f"counting matches for ImageryFinder {criteria.finder_id}"):
            await self._session.execute(CUSTOM_PLAN)
            return int((await self._session.execute(stmt)).scalar_one())
