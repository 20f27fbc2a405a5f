"""The Sentinel-2-like tile grid the synthetic archive's Sentinel items revisit.

A global grid of ~110 km tiles spaced 100 km apart (so neighbours overlap by
~10 km, like MGRS tiles) between 60°S and 75°N: 150 rows 0.9° apart, each row
holding ``round(360 cos(lat) * 111.32 / 100)`` tiles whose width in degrees
grows as ``1 / cos(lat)`` (edges are ~110 km at their own latitude, so a tile is
a slight trapezoid). Column 0 of every row is centred on the antimeridian, so
it crosses it (a MultiPolygon). A tile's code is ``RRRCCC`` (row, column).

Each tile also knows its nearest listed city and its rank around that city
(0 for the tile nearest to it), which the plan uses to take tiles near cities
first.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely

from noctis.devtools.synthetic.cities import CITIES
from noctis.devtools.synthetic.geometry import (
    DECIMALS,
    KM_PER_DEGREE,
    Objects,
    hex_ewkb,
    unit_vectors,
    wrap_antimeridian,
)

__all__ = ["Grid", "tile_grid"]

_LAT_MIN: Final = -60.0
_LAT_MAX: Final = 75.0
_TILE_KM: Final = 110.0
_TILE_STEP_KM: Final = 100.0


@dataclass(frozen=True, eq=False)
class Grid:
    """Every tile, column by column (arrays of equal length)."""

    code: Objects  # "RRRCCC"
    lon: npt.NDArray[np.float64]  # centre
    footprint_hex: Objects
    crosses: npt.NDArray[np.bool_]
    city_rank: npt.NDArray[np.int64]  # 0 for the tile nearest its nearest city, then 1, ...
    city: npt.NDArray[np.int64]  # index in CITIES of the nearest city

    def __len__(self) -> int:
        return len(self.code)


@lru_cache(maxsize=1)
def tile_grid() -> Grid:
    """The grid (46,738 tiles, 150 of them across the antimeridian), built once per process."""
    rows = round((_LAT_MAX - _LAT_MIN) / (_TILE_STEP_KM / KM_PER_DEGREE))
    step = (_LAT_MAX - _LAT_MIN) / rows
    row_lat = _LAT_MIN + step * (np.arange(rows) + 0.5)
    per_row = np.maximum(
        1, np.round(360.0 * np.cos(np.radians(row_lat)) * KM_PER_DEGREE / _TILE_STEP_KM)
    ).astype(np.int64)
    row = np.repeat(np.arange(rows), per_row)
    col = np.arange(per_row.sum()) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    lat = row_lat[row]
    lon = -180.0 + col * (360.0 / per_row[row])

    half_h = _TILE_KM / 2 / KM_PER_DEGREE
    south, north = lat - half_h, lat + half_h
    half_s = _TILE_KM / 2 / (KM_PER_DEGREE * np.cos(np.radians(south)))
    half_n = _TILE_KM / 2 / (KM_PER_DEGREE * np.cos(np.radians(north)))
    ring = np.stack(
        [
            np.stack([lon - half_s, south], axis=-1),
            np.stack([lon + half_s, south], axis=-1),
            np.stack([lon + half_n, north], axis=-1),
            np.stack([lon - half_n, north], axis=-1),
            np.stack([lon - half_s, south], axis=-1),
        ],
        axis=1,
    )
    footprints = wrap_antimeridian(shapely.polygons(np.round(ring, DECIMALS)))
    crosses = shapely.get_type_id(footprints) == 6

    nearest, rank = _nearest_city_and_rank(lon, lat)
    code = np.char.add(np.char.zfill(row.astype(str), 3), np.char.zfill(col.astype(str), 3)).astype(
        object
    )
    return Grid(
        code=code,
        lon=lon,
        footprint_hex=hex_ewkb(footprints),
        crosses=crosses,
        city_rank=rank,
        city=nearest,
    )


def _nearest_city_and_rank(
    lon: npt.NDArray[np.floating[Any]], lat: npt.NDArray[np.floating[Any]]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Nearest city of every tile (great circle), then each tile's rank around that city."""
    tiles_xyz = unit_vectors(lon, lat)
    cities_xyz = unit_vectors(np.array([c.lon for c in CITIES]), np.array([c.lat for c in CITIES]))
    nearest = np.empty(len(lon), dtype=np.int64)
    closeness = np.empty(len(lon), dtype=np.float64)
    for a in range(0, len(lon), 8192):
        dots = tiles_xyz[a : a + 8192] @ cities_xyz.T
        nearest[a : a + 8192] = dots.argmax(axis=1)
        closeness[a : a + 8192] = dots.max(axis=1)
    by_city = np.lexsort((-closeness, nearest))
    group_start = np.searchsorted(nearest[by_city], nearest[by_city], side="left")
    rank = np.empty(len(lon), dtype=np.int64)
    rank[by_city] = np.arange(len(lon)) - group_start
    return nearest, rank
