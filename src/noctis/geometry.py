"""Pure geometry (shapely, numpy; no database): checks of a location, bboxes of footprints."""

from __future__ import annotations

import numpy as np
import shapely

LON_MIN, LON_MAX, LAT_MIN, LAT_MAX = -180.0, 180.0, -90.0, 90.0


def within_lon_lat(bounds: tuple[float, float, float, float]) -> bool:
    """Whether (x_min, y_min, x_max, y_max) lies inside [-180, 180] x [-90, 90]."""
    x_min, y_min, x_max, y_max = bounds
    return x_min >= LON_MIN and x_max <= LON_MAX and y_min >= LAT_MIN and y_max <= LAT_MAX


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
        spans[(np.abs(x1) == LON_MAX) & (np.abs(x2) == LON_MAX)] = 0.0
        i = int(np.argmax(spans))
        if spans[i] > span:
            span, widest = float(spans[i]), (float(x1[i]), float(x2[i]))
    return widest


def rfc7946_bbox(geometry: shapely.Geometry) -> list[float]:
    """[west, south, east, north] of a footprint, as RFC 7946 (section 5.2) writes it.

    A footprint split at the antimeridian (a MultiPolygon with parts on +180 and on -180, as
    Atlas stores them) gets west > east, e.g. ``[179, 0, -179, 1]`` for a scene over 180°,
    instead of a box round the whole globe. Anything else gets its plain bounds.
    """
    x_min, y_min, x_max, y_max = (float(v) for v in shapely.bounds(geometry))
    if not (x_min == LON_MIN and x_max == LON_MAX):
        return [x_min, y_min, x_max, y_max]
    parts = shapely.bounds(shapely.get_parts(geometry))
    east = parts[parts[:, 2] == LON_MAX]  # the parts on +180: the west end of the box
    west = parts[parts[:, 2] < LON_MAX]  # the parts that continue past -180
    if len(east) == 0 or len(west) == 0 or west[:, 2].max() >= east[:, 0].min():
        return [x_min, y_min, x_max, y_max]  # a band round the globe, or no gap to cross
    return [float(east[:, 0].min()), y_min, float(west[:, 2].max()), y_max]
