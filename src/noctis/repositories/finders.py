"""Dreams and imagery finders: lookups by id and what PostGIS says of a finder's location."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.errors import DreamNotFound, FinderNotFound
from noctis.models import Dream, ImageryFinder
from noctis.repositories.geo import spheroid_area

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
    """Area on the WGS 84 spheroid, square metres (:func:`~noctis.repositories.geo.spheroid_area`:
    geography below 180° of longitude, an equal-area projection beyond); None unless polygonal
    and valid."""
    bounds: tuple[float, float, float, float] | None
    """(x_min, y_min, x_max, y_max), None when empty."""
    polygon_wkb: bytes | None = None
    """The location as WKB when it is polygonal and not empty (for the pure checks of
    :mod:`noctis.geometry`)."""

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

    async def describe_location(self, finder_id: int) -> LocationReport:
        """Type, validity (with PostGIS' reason), spheroidal area and bounds of a location."""
        loc = ImageryFinder.location
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
        ).where(ImageryFinder.id == finder_id)
        async with translated(f"inspecting the location of ImageryFinder {finder_id}"):
            row = (await self._session.execute(stmt)).one_or_none()
        if row is None:
            raise FinderNotFound(finder_id)
        gtype, srid, empty, is_valid, reason, area_m2, wkb, *bounds = row
        return LocationReport(
            geometry_type=gtype,
            srid=srid,
            is_empty=bool(empty),
            is_valid=bool(is_valid),
            invalid_reason=None if is_valid else reason,
            area_m2=area_m2,
            bounds=None if empty or bounds[0] is None else tuple(bounds),
            polygon_wkb=None if wkb is None or empty else bytes(wkb),
        )
