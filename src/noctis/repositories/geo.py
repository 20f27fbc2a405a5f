"""Areas and repairs that hold for any geometry Atlas may hold: SQL expressions, no I/O.

**Areas.** ``ST_Area(geometry::geography)`` is the spheroidal area Noctis reports, but
geography reads every edge as the shorter great-circle arc, whereas the match rule
(``ST_Intersects`` on geometry) reads it as a straight line in lon/lat. The two agree for
anything narrower than 180° of longitude; beyond that geography measures another shape, fails
(``Antipodal (180 degrees long) edge detected!`` for the whole world,
``POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))``), or collapses a ring that goes
round the globe to zero (a band ``-180 .. 180``). :func:`spheroid_area` therefore measures a
geometry at least 180° wide in the Lambert cylindrical equal-area projection of WGS 84, after
densifying it to 1° segments: an equal-area projection keeps areas on the spheroid, and it
keeps the lon/lat reading of the edges (the whole world measures 510,065,622 km², the WGS 84
ellipsoid's surface). Below 180° the result is the geography area, as before, to the digit.

**Invalid footprints.** The archive's CHECK only enforces the footprint's type; an invalid
one (a bow-tie) makes ``ST_Intersection`` raise a GEOS ``TopologyException``, which would
fail the whole statement and so the whole study. ``ST_Intersects`` does not raise, so such an
item matches as usual; its coverage is computed on ``ST_MakeValid(footprint)`` (its polygonal
part). :func:`clipped_area` keeps the normal path as it was and pays one ``ST_IsValid`` per
matched row for this (measured in docs/reliability.md).
"""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import ColumnElement, and_, case, cast, func, literal

EQUAL_AREA_PROJ = "+proj=cea +lon_0=0 +lat_ts=0 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
"""Lambert cylindrical equal-area on WGS 84 (areas in m² equal the spheroid's)."""
DENSIFY_DEGREES = 1.0
WIDE_DEGREES = 180.0


def _equal_area(geom: Any) -> ColumnElement[float]:
    densified = func.ST_Segmentize(geom, DENSIFY_DEGREES)
    return func.ST_Area(func.ST_Transform(densified, literal(EQUAL_AREA_PROJ)))


def _geography_area(geom: Any) -> ColumnElement[float]:
    return func.ST_Area(cast(geom, Geography))


def _narrow(geom: Any) -> ColumnElement[bool]:
    return (func.ST_XMax(geom) - func.ST_XMin(geom)) < WIDE_DEGREES


def spheroid_area(geom: Any) -> ColumnElement[float]:
    """Area in m² on the WGS 84 spheroid of a geometry read as planar lon/lat (module doc)."""
    return case((_narrow(geom), _geography_area(geom)), else_=_equal_area(geom))


def repaired(footprint: Any) -> ColumnElement[Any]:
    """The polygonal part of ``ST_MakeValid(footprint)``: what an invalid footprint covers."""
    return func.ST_CollectionExtract(func.ST_MakeValid(footprint), 3)


def clean_footprint(footprint: Any) -> ColumnElement[Any]:
    """``footprint`` when valid, else its repair: safe to pass to a GEOS overlay."""
    return case((func.ST_IsValid(footprint), footprint), else_=repaired(footprint))


def clipped_area(
    footprint: Any, aoi: Any, *, aoi_area: float | None = None
) -> ColumnElement[float]:
    """Area in m² of ``footprint ∩ aoi`` (``aoi`` valid), whatever the footprint.

    The usual case, a valid footprint narrower than 180°, is the plain
    ``ST_Area(ST_Intersection(footprint, aoi)::geography)`` (one ``ST_IsValid`` and a bounding
    box lookup in front of it); an invalid footprint is repaired first, and a wide one (split
    at the antimeridian) is measured in the equal-area projection. A piece is never wider than
    its footprint, so the footprint's bounding box decides.

    With ``aoi_area`` (the AOI's :func:`spheroid_area`), the overlay is skipped where a
    predicate settles it: a footprint covering the AOI covers all of it, a footprint inside
    the AOI covers itself. ``ST_Covers`` with a constant AOI uses PostGIS' prepared-geometry
    cache, the overlay does not: up to 36% of the link step on large AOIs
    (benchmarks/RESULTS.md).
    """
    valid, narrow = func.ST_IsValid(footprint), _narrow(footprint)
    piece = func.ST_Intersection(footprint, aoi)
    repaired_piece = func.ST_Intersection(repaired(footprint), aoi)
    usual: ColumnElement[float] = _geography_area(piece)
    if aoi_area is not None:
        usual = case(
            (func.ST_Covers(footprint, aoi), literal(aoi_area)),
            (func.ST_Covers(aoi, footprint), _geography_area(footprint)),
            else_=usual,
        )
    return case(
        (and_(valid, narrow), usual),
        (narrow, _geography_area(repaired_piece)),
        (valid, _equal_area(piece)),
        else_=_equal_area(repaired_piece),
    )
