"""Dreams and imagery finders: lookups by primary key and what PostGIS says of a location."""

from __future__ import annotations

from dataclasses import dataclass

from geoalchemy2 import Geography
from sqlalchemy import and_, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.errors import NotFound
from noctis.models import Dream, ImageryFinder

POINT_TYPES = frozenset({"ST_Point", "ST_MultiPoint"})
POLYGONAL_TYPES = frozenset({"ST_Polygon", "ST_MultiPolygon"})


@dataclass(frozen=True, slots=True)
class LocationReport:
    """PostGIS' verdict on a finder's location, computed in one round trip."""

    geometry_type: str | None
    srid: int | None
    is_empty: bool
    is_valid: bool
    invalid_reason: str | None
    area_m2: float | None
    """Area on the spheroid (geography), square metres; None unless polygonal and valid."""
    bounds: tuple[float, float, float, float] | None
    """(x_min, y_min, x_max, y_max), None when empty."""

    @property
    def is_point(self) -> bool:
        return self.geometry_type in POINT_TYPES

    @property
    def is_polygonal(self) -> bool:
        return self.geometry_type in POLYGONAL_TYPES


class DreamRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, pk: int) -> Dream:
        async with translated(f"loading Dream {pk}"):
            dream = await self._session.get(Dream, pk)
        if dream is None:
            raise NotFound("Dream", pk)
        return dream


class ImageryFinderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, pk: int) -> ImageryFinder:
        async with translated(f"loading ImageryFinder {pk}"):
            finder = await self._session.get(ImageryFinder, pk)
        if finder is None:
            raise NotFound("ImageryFinder", pk)
        return finder

    async def describe_location(self, pk: int) -> LocationReport:
        """Type, validity (with PostGIS' reason) and spheroidal area of the finder's location."""
        loc = ImageryFinder.location
        valid = func.ST_IsValid(loc)
        polygonal = func.ST_GeometryType(loc).in_(sorted(POLYGONAL_TYPES))
        area = func.ST_Area(cast(loc, Geography))
        stmt = select(
            func.ST_GeometryType(loc),
            func.ST_SRID(loc),
            func.ST_IsEmpty(loc),
            valid,
            func.ST_IsValidReason(loc),
            # Only measured when it can be: ST_Area on an invalid polygon is meaningless.
            case((and_(valid, polygonal, ~func.ST_IsEmpty(loc)), area), else_=None),
            func.ST_XMin(loc),
            func.ST_YMin(loc),
            func.ST_XMax(loc),
            func.ST_YMax(loc),
        ).where(ImageryFinder.id == pk)
        async with translated(f"inspecting the location of ImageryFinder {pk}"):
            row = (await self._session.execute(stmt)).one_or_none()
        if row is None:
            raise NotFound("ImageryFinder", pk)
        gtype, srid, empty, is_valid, reason, area_m2, *bounds = row
        return LocationReport(
            geometry_type=gtype,
            srid=srid,
            is_empty=bool(empty),
            is_valid=bool(is_valid),
            invalid_reason=None if is_valid else reason,
            area_m2=area_m2,
            bounds=None if empty or bounds[0] is None else tuple(bounds),
        )
