"""Pure geometry checks on a finder's location (shapely and numpy, no database)."""

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
