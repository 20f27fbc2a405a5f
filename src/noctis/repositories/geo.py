"""Areas and repairs that hold for any geometry Atlas may hold: SQL expressions, no I/O.

**Areas.** Coverage reads a shape as the match rule does (``ST_Intersects`` on geometry):
edges straight in lon/lat. :func:`spheroid_area` measures it on the WGS 84 spheroid in the
Lambert cylindrical equal-area projection (``EPSG:6933``, in PostGIS' ``spatial_ref_sys``; an
equal-area projection keeps areas on the spheroid whatever its standard parallel), after
densifying it to :data:`DENSIFY_DEGREES` segments (meridians and parallels stay straight in
it; another edge becomes a slight curve, replaced by its chords). The whole world measures
510,065,622 km², the ellipsoid's surface. ``ST_Area(geometry::geography)`` is not used: it
reads every edge as the shorter great-circle arc, another shape than the one the rule matched.
The two agree to about 0.2% on a 110 km tile, not beyond: a 150° x 25° AOI at 50°N measured
5.4 million km² as geography against 21.4 million with its edges as the rule reads them, and
the coverages of its disjoint scenes summed to 1.62. The projection is also cheaper per row:
0.84x geography's time for the area of 100,000 one-degree tiles, 0.75x with the overlay
(2026-12-01, both densified to 0.25°). Every area of a ratio, the
AOI's and the pieces', is measured this one way, as the coverage plans measure theirs
(:mod:`noctis.cover.areas`).

**Invalid footprints.** The archive's CHECK only enforces the footprint's type; an invalid
one (a bow-tie) makes ``ST_Intersection`` raise a GEOS ``TopologyException``, which would
fail the whole statement and so the whole study. ``ST_Intersects`` does not raise, so such an
item matches as usual; its coverage is computed on ``ST_MakeValid(footprint)`` (its polygonal
part). :func:`clipped_share` keeps the normal path as it was and pays one ``ST_IsValid`` per
matched row for this (measured in docs/reliability.md).

**Non-finite footprints.** A footprint with an ``Infinity`` or ``NaN`` coordinate is bad
archive data that no repair makes right: ``ST_MakeValid`` gives NULL for the first and
silently drops the vertex of the second. Such an item still matches (by its bounding box:
:func:`intersects`, below), but it never gets a coverage (NULL, never a made-up number:
:func:`clipped_share`), it adds nothing to the union coverage (:func:`clean_footprint` gives
NULL), and the study counts it as suspect (:func:`non_finite`). The test is the footprint's
perimeter (:func:`finite`): one pass over its vertices, no GEOS, before anything else.

**The match on any footprint.** GEOS refuses non-finite numbers in its predicates: on such a
footprint ``ST_Intersects`` raises ``CGAlgorithmsDD::orientationIndex encountered NaN/Inf
numbers`` for some AOIs (a 500-vertex country) and answers for others (a rectangle, which
GEOS decides from the boxes), so one bad scene would fail every study whose AOI its box meets.
:func:`intersects` asks GEOS only of footprints whose coordinates are all finite (their
perimeter is: one pass over the vertices, no GEOS) and decides a non-finite one by its
bounding box.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, case, func, literal, literal_column, true

EQUAL_AREA_SRID = 6933
"""WGS 84 / NSIDC EASE-Grid 2.0 Global: Lambert cylindrical equal-area on WGS 84 (areas in m²
equal the spheroid's). By SRID, PostGIS keeps the transformation cached; by a PROJ string it
builds it again for every row (58x slower, measured)."""
DENSIFY_DEGREES = 0.25
"""As the coverage plans densify (:data:`noctis.cover.areas.SEGMENT_DEGREES`): a 1° chord was
2e-4 off on a slanted edge, 0.25° 2e-5."""


def intersects(footprint: Any, aoi: Any) -> ColumnElement[bool]:
    """``ST_Intersects(footprint, aoi)`` for any footprint Atlas may hold (module doc): the
    boxes first (``&&``, what the archive's GiST index answers: inside a CASE, ST_Intersects'
    own index support cannot reach the index), then the exact predicate when the footprint's
    coordinates are all finite; a non-finite footprint matches when its box meets the AOI's.
    CASE makes the finiteness test run first: PostgreSQL does not promise the order of ANDed
    conditions.
    """
    exact = func.ST_Intersects(footprint, aoi, type_=Boolean)
    return and_(footprint.bool_op("&&")(aoi), case((finite(footprint), exact), else_=true()))


def finite(footprint: Any) -> ColumnElement[bool]:
    """Whether ``footprint``'s perimeter is finite: false for a NaN or infinite coordinate
    (PostgreSQL sorts NaN above Infinity), and for coordinates so large (beyond about 1e154°)
    that a distance overflows: none of these is a place on Earth. One pass over the vertices
    in liblwgeom, no GEOS; every rule that must not hand such a footprint to GEOS, or to a
    JSON writer, asks this one."""
    return func.ST_Perimeter(footprint) < literal_column("'Infinity'::float8")


def spheroid_area(geom: Any) -> ColumnElement[float]:
    """Area in m² on the WGS 84 spheroid of a geometry read as planar lon/lat (module doc)."""
    densified = func.ST_Segmentize(geom, DENSIFY_DEGREES)
    return func.ST_Area(func.ST_Transform(densified, EQUAL_AREA_SRID))


def repaired(footprint: Any) -> ColumnElement[Any]:
    """The polygonal part of ``ST_MakeValid(footprint)``: what an invalid footprint covers."""
    return func.ST_CollectionExtract(func.ST_MakeValid(footprint), 3)


def non_finite(footprint: Any) -> ColumnElement[bool]:
    """Whether ``footprint`` has an Infinity or NaN coordinate (or an absurdly large one):
    not :func:`finite`."""
    return ~finite(footprint)


def suspect(footprint: Any) -> ColumnElement[bool]:
    """Whether ``footprint`` is bad archive data that gets no coverage (module doc)."""
    return non_finite(footprint)


def clean_footprint(footprint: Any) -> ColumnElement[Any]:
    """``footprint`` when valid, its repair when it can be repaired, else NULL: safe to pass to
    a GEOS overlay or an aggregate (``ST_Union`` skips NULLs)."""
    return case(
        (non_finite(footprint), literal(None)),
        (func.ST_IsValid(footprint), footprint),
        else_=repaired(footprint),
    )


def clipped_share(
    footprint: Any, aoi: Any, *, aoi_area: float | ColumnElement[Any]
) -> ColumnElement[float | None]:
    """The share of the AOI (``aoi`` valid, ``aoi_area`` its :func:`spheroid_area`) that
    ``footprint`` covers, in [0, 1], whatever the footprint; NULL for a non-finite one.

    The usual case, a valid footprint, is the :func:`spheroid_area` of
    ``ST_Intersection(footprint, aoi)`` (one ``ST_IsValid`` in front of it), where a predicate
    does not settle it first: a footprint covering the AOI covers all of it, a footprint
    inside the AOI covers itself. ``ST_Covers`` with a constant AOI uses PostGIS'
    prepared-geometry cache, the overlay does not: up to 36% of the link step on large AOIs
    (benchmarks/RESULTS.md). An invalid footprint is repaired first.

    ``aoi_area`` is a number (one finder) or a column (many, each non-null and positive).
    ``least(1, area / aoi_area)`` absorbs rounding (a footprint covering the AOI may measure a
    hair more than it); LEAST ignores a NULL argument, so the repaired branches, whose area
    may be NULL, are clamped only when it is not: a NULL area stays NULL, never 1.0.
    """
    valid = func.ST_IsValid(footprint)
    piece = func.ST_Intersection(footprint, aoi)
    repaired_piece = func.ST_Intersection(repaired(footprint), aoi)

    def share(area: ColumnElement[float]) -> ColumnElement[float]:
        return func.least(1.0, area / aoi_area)

    def share_or_null(area: ColumnElement[float]) -> ColumnElement[float | None]:
        return case((area.is_(None), literal(None)), else_=share(area))

    whole = aoi_area if isinstance(aoi_area, ColumnElement) else literal(aoi_area)
    usual = case(
        (func.ST_Covers(footprint, aoi), whole),
        (func.ST_Covers(aoi, footprint), spheroid_area(footprint)),
        else_=spheroid_area(piece),
    )
    return case(
        (non_finite(footprint), literal(None)),
        (valid, share(usual)),
        else_=share_or_null(spheroid_area(repaired_piece)),
    )
