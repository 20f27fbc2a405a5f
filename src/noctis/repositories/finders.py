"""Dreams and imagery finders: lookups by id, and what the database says of a finder's row
(its location, its dates, its collections) before the row is loaded into Python."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Text,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.errors import DreamNotFound, FinderNotFound
from noctis.models import Dream, ImageryFinder
from noctis.repositories.geo import spheroid_area

POINT_TYPES = frozenset({"ST_Point", "ST_MultiPoint"})
POLYGONAL_TYPES = frozenset({"ST_Polygon", "ST_MultiPolygon"})


PYTHON_DATES = (date.min, date.max)
"""The dates Python's ``date`` holds; PostgreSQL's range is wider (4713 BC .. 5874897 AD)."""


@dataclass(frozen=True, slots=True)
class FinderReport:
    """The database's verdict on a finder's row, computed in one round trip, before the row is
    loaded: its location (PostGIS), and the dates and collections Python could not hold."""

    geometry_type: str | None
    srid: int | None
    is_empty: bool
    is_valid: bool
    invalid_reason: str | None
    area_m2: float | None
    """Area on the WGS 84 spheroid, square metres (:func:`~noctis.repositories.geo.spheroid_area`:
    edges straight in lon/lat, in an equal-area projection); None unless polygonal and valid."""
    bounds: tuple[float, float, float, float] | None
    """(x_min, y_min, x_max, y_max), None when empty."""
    polygon_wkb: bytes | None = None
    """The location as WKB when it is polygonal and not empty (for the pure checks of
    :mod:`noctis.geometry`)."""
    vertices: int = 0
    """``ST_NPoints(location)``: every vertex (a MultiPoint's points)."""
    unrepresentable_dates: tuple[tuple[str, str], ...] = ()
    """(column, value as PostgreSQL prints it) of each date outside :data:`PYTHON_DATES`."""
    collections_dimensions: int | None = None
    """``array_ndims(collections)``: 1 for a list, None when null or empty."""

    @property
    def is_point(self) -> bool:
        return self.geometry_type in POINT_TYPES

    @property
    def is_polygonal(self) -> bool:
        return self.geometry_type in POLYGONAL_TYPES


class DreamRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, dream_id: int) -> Dream:
        async with translated(f"loading Dream {dream_id}"):
            dream = await self._session.get(Dream, dream_id)
        if dream is None:
            raise DreamNotFound(dream_id)
        return dream


class ImageryFinderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, finder_id: int) -> ImageryFinder:
        async with translated(f"loading ImageryFinder {finder_id}"):
            finder = await self._session.get(ImageryFinder, finder_id)
        if finder is None:
            raise FinderNotFound(finder_id)
        return finder

    async def existing(self, finder_ids: list[int]) -> set[int]:
        """Which of ``finder_ids`` exist."""
        stmt = select(ImageryFinder.id).where(ImageryFinder.id.in_(finder_ids))
        async with translated("looking up imagery finders"):
            return set((await self._session.scalars(stmt)).all())

    async def describe(self, finder_id: int) -> FinderReport:
        """The location's type, validity (with PostGIS' reason), spheroidal area and bounds,
        the dates Python cannot hold and the collections' dimensions; FinderNotFound if none."""
        loc = ImageryFinder.location
        # Constants in the SQL text: asyncpg binds date.min and date.max as -infinity and
        # infinity, which no finite date is outside of.
        first, last = (literal_column(f"DATE '{day.isoformat()}'", Date) for day in PYTHON_DATES)

        def unrepresentable(column: Any) -> ColumnElement[str | None]:
            outside = and_(func.isfinite(column), or_(column < first, column > last))
            return case((outside, cast(column, Text)), else_=None)

        valid = func.ST_IsValid(loc)
        polygonal = func.ST_GeometryType(loc).in_(sorted(POLYGONAL_TYPES))
        measurable = and_(valid, polygonal, ~func.ST_IsEmpty(loc))
        stmt = select(
            func.ST_GeometryType(loc),
            func.ST_SRID(loc),
            func.ST_IsEmpty(loc),
            valid,
            func.ST_IsValidReason(loc),
            # Only measured when it can be: ST_Area on an invalid polygon is meaningless.
            case((measurable, spheroid_area(loc)), else_=None),
            case((polygonal, func.ST_AsBinary(loc)), else_=None),
            func.ST_XMin(loc),
            func.ST_YMin(loc),
            func.ST_XMax(loc),
            func.ST_YMax(loc),
            func.ST_NPoints(loc),
            unrepresentable(ImageryFinder.start_date),
            unrepresentable(ImageryFinder.end_date),
            func.array_ndims(ImageryFinder.collections),
        ).where(ImageryFinder.id == finder_id)
        async with translated(f"loading ImageryFinder {finder_id}"):
            row = (await self._session.execute(stmt)).one_or_none()
        if row is None:
            raise FinderNotFound(finder_id)
        gtype, srid, empty, is_valid, reason, area_m2, wkb, *bounds, vertices = row[:12]
        start, end, ndims = row[12:]
        dates = (("start_date", start), ("end_date", end))
        return FinderReport(
            geometry_type=gtype,
            srid=srid,
            is_empty=bool(empty),
            is_valid=bool(is_valid),
            invalid_reason=None if is_valid else reason,
            area_m2=area_m2,
            bounds=None if empty or bounds[0] is None else tuple(bounds),
            polygon_wkb=None if wkb is None or empty else bytes(wkb),
            vertices=int(vertices or 0),
            unrepresentable_dates=tuple((name, value) for name, value in dates if value),
            collections_dimensions=ndims,
        )
