"""Dreams and imagery finders: lookups by primary key and what PostGIS says of a location."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.errors import NotFound
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
    widest_edge: tuple[float, float] | None = None
    """Longitudes (from, to) of the polygon edge spanning more than 180° of longitude, if any
    (edges between two vertices on ±180 excepted): see :func:`widest_edge`."""

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
        """Type, validity (with PostGIS' reason), spheroidal area and widest edge of a location."""
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
        ).where(ImageryFinder.id == pk)
        async with translated(f"inspecting the location of ImageryFinder {pk}"):
            row = (await self._session.execute(stmt)).one_or_none()
        if row is None:
            raise NotFound("ImageryFinder", pk)
        gtype, srid, empty, is_valid, reason, area_m2, wkb, *bounds = row
        return LocationReport(
            geometry_type=gtype,
            srid=srid,
            is_empty=bool(empty),
            is_valid=bool(is_valid),
            invalid_reason=None if is_valid else reason,
            area_m2=area_m2,
            bounds=None if empty or bounds[0] is None else tuple(bounds),
            widest_edge=None if wkb is None or empty else widest_edge(bytes(wkb)),
        )


def widest_edge(wkb: bytes) -> tuple[float, float] | None:
    """The longitudes (from, to) of the polygon edge that spans the most longitude, when it spans
    more than 180°; None otherwise.

    Such an edge is ambiguous: the match (planar lon/lat, ``ST_Intersects``) goes the long way
    round, the spheroid (geography) the short way, so a location meant to cross the
    antimeridian, like ``POLYGON((170 -10, -170 -10, -170 10, 170 10, 170 -10))``, would match
    the 340° between instead. Edges between two vertices on ±180 are not ambiguous (they are
    the seam of a location split at the antimeridian, or of a band around the globe such as the
    whole world) and are ignored.
    """
    widest: tuple[float, float] | None = None
    span = 180.0
    for ring in shapely.get_rings(shapely.get_parts(shapely.from_wkb(wkb))):
        x = shapely.get_coordinates(ring)[:, 0]
        if x.size < 2:
            continue
        x1, x2 = x[:-1], x[1:]
        spans = np.abs(x2 - x1)
        spans[(np.abs(x1) == 180.0) & (np.abs(x2) == 180.0)] = 0.0
        i = int(np.argmax(spans))
        if spans[i] > span:
            span, widest = float(spans[i]), (float(x1[i]), float(x2[i]))
    return widest
