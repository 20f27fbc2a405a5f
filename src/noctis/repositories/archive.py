"""The match rule and the archive search: what "matches" means, in one place.

An archive item matches a finder when its footprint intersects the finder's
location (``ST_Intersects``, so touching counts) and it was acquired in
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

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import ColumnElement, Text, any_, bindparam, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.models import ArchiveItem, ArchiveLookupItem
from noctis.repositories.geo import clipped_share

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


def match_conditions(criteria: MatchCriteria) -> list[ColumnElement[bool]]:
    """The match rule as SQL conditions on ``archive_item`` (only the filters that apply)."""
    conditions: list[ColumnElement[bool]] = [
        func.ST_Intersects(ArchiveItem.footprint, aoi_param(criteria))
    ]
    if criteria.start is not None:
        conditions.append(ArchiveItem.acquired_at >= criteria.start)
    if criteria.end is not None:
        conditions.append(ArchiveItem.acquired_at < criteria.end)
    if criteria.max_cloud_cover is not None:
        # NULL cloud cover fails the comparison, so unknown cover is excluded too.
        conditions.append(ArchiveItem.cloud_cover <= criteria.max_cloud_cover)
    if criteria.collections is not None:
        # One array parameter, whatever its length: IN (...) binds one parameter per name and
        # PostgreSQL takes at most 32,767.
        names = bindparam("collections", list(criteria.collections), type_=ARRAY(Text))
        conditions.append(ArchiveItem.collection == any_(names))
    return conditions


def coverage_expression(criteria: MatchCriteria) -> ColumnElement[float | None]:
    """area(footprint ∩ AOI) / area(AOI) on the spheroid; the AOI's area is computed once.

    :func:`~noctis.repositories.geo.clipped_share` keeps one invalid or antimeridian-split
    footprint from failing the statement, and gives a non-finite one NULL.
    """
    if criteria.area_m2 is None or criteria.area_m2 <= 0:
        return literal(None, type_=ArchiveLookupItem.coverage.type)
    return clipped_share(ArchiveItem.footprint, aoi_param(criteria), aoi_area=criteria.area_m2)


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
