"""Geometry shared by the tile grid, the scenes and the AOIs: lon/lat on a sphere.

Distances use a spherical 111.32 km per degree (good enough for synthetic
data); coordinates are rounded to 1e-7 degrees (~1 cm). Shapes that leave
[-180, 180] are split at the antimeridian into a MultiPolygon, RFC 7946 style.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely

SRID: Final = 4326
KM_PER_DEGREE: Final = 111.32
DECIMALS: Final = 7  # coordinates rounded to 1e-7 degree (~1 cm)

Objects = npt.NDArray[np.object_]


def wrap_antimeridian(geoms: Objects) -> Objects:
    """Split geometries whose longitudes leave [-180, 180] at ±180; orient CCW; SRID 4326.

    Input longitudes are continuous (e.g. 179.5..180.5); each part beyond ±180
    is shifted by ∓360.
    """
    out = np.array(geoms, dtype=object, copy=True)
    if len(out):
        bounds = shapely.bounds(out)
        crossing = np.flatnonzero((bounds[:, 0] < -180.0) | (bounds[:, 2] > 180.0))
        if len(crossing):
            sub = out[crossing]
            inside = shapely.clip_by_rect(sub, -180.0, -90.0, 180.0, 90.0)
            east = shapely.transform(
                shapely.clip_by_rect(sub, 180.0, -90.0, 540.0, 90.0), _shift(-360.0)
            )
            west = shapely.transform(
                shapely.clip_by_rect(sub, -540.0, -90.0, -180.0, 90.0), _shift(360.0)
            )
            for i, pieces in zip(
                crossing.tolist(), zip(inside, east, west, strict=True), strict=True
            ):
                parts = [
                    p
                    for piece in pieces
                    for p in shapely.get_parts(piece).tolist()
                    if p.geom_type == "Polygon" and p.area > 0.0
                ]
                out[i] = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
        out = shapely.orient_polygons(out, exterior_cw=False)
    return np.asarray(shapely.set_srid(out, SRID), dtype=object)


def _shift(dx: float) -> Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    def move(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        moved = coords.copy()
        moved[:, 0] = np.clip(np.round(moved[:, 0] + dx, DECIMALS), -180.0, 180.0)
        return moved

    return move


def hex_ewkb(geoms: Objects) -> Objects:
    """Hex EWKB (little-endian, 2D, with the SRID), as COPY takes a geometry."""
    return np.asarray(
        shapely.to_wkb(geoms, hex=True, include_srid=True, byte_order=1, output_dimension=2),
        dtype=object,
    )


def unit_vectors(lon: npt.NDArray[np.floating[Any]], lat: npt.NDArray[np.floating[Any]]) -> Any:
    """Points on the unit sphere: their dot products order great-circle distances."""
    lo, la = np.radians(lon), np.radians(lat)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)
