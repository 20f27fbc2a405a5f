"""The plan of an archive: which item comes at which row, and when it was acquired.

*Sentinel-2-like items* (``sentinel_share`` of the archive, rounded): each tile
of the grid is revisited every ``revisit_days`` days from a random phase, at
10:30 local solar time (``10:30 - lon/15 h`` UTC, ±3 min), over the UTC days of
``[start, end]``.

A finite archive holds *fewer tiles, not sparser revisits*: tiles are taken
whole, in an order, until the Sentinel items are used up (the last tile's
series stops early). The order interleaves two streams, ``tile_city_bias`` (80%)
from the first and the rest from the second:

1. tiles near the listed cities, round-robin: the tile nearest to each city
   (cities in a seeded order) first, then each city's second-nearest, and so
   on. Tiles that cross the antimeridian and are the nearest tile of a city come
   first of all, so even a small archive has antimeridian tiles;
2. all tiles in a seeded random order (oceans included).

So a 100k archive has 118 tiles, most of them on a city; 5M has ~5,900.

*Commercial items* (the rest) pick a city (each with its own seeded
popularity and spread of 3-40 km), a uniformly random UTC day and a time
between 08:00 and 15:00 local solar time; they are numbered in acquisition
order. Rows come in acquisition order, as an archive would ingest them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt

from noctis.devtools.synthetic import seeds
from noctis.devtools.synthetic.cities import CITIES
from noctis.devtools.synthetic.grid import Grid, tile_grid
from noctis.devtools.synthetic.spec import ArchiveSpec

__all__ = ["Plan", "make_plan"]

_MS_PER_DAY: Final = 86_400_000
_MS_PER_HOUR: Final = 3_600_000


@dataclass(frozen=True, eq=False)
class Plan:
    """Which item comes at which row; the per-row details are drawn per block."""

    n_sentinel: int
    order: npt.NDArray[np.int64]  # row -> item; items < n_sentinel are Sentinel ones
    s2_tile: npt.NDArray[np.int64]
    s2_visit: npt.NDArray[np.int64]  # k-th visit of its tile
    city: npt.NDArray[np.int64]  # commercial item -> CITIES index
    city_spread_km: npt.NDArray[np.float64]
    ts_ms: npt.NDArray[np.int64]  # item -> epoch milliseconds, Sentinel items first


def _epoch_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * _MS_PER_DAY


def _tile_order(spec: ArchiveSpec, grid: Grid, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Every tile, in the order tiles are taken (see the module docstring)."""
    n = len(grid)
    city_position = rng.permutation(len(CITIES))
    leading = (grid.city_rank == 0) & grid.crosses
    near = np.lexsort((city_position[grid.city], ~leading, grid.city_rank))
    anywhere = rng.permutation(n)
    near_pos = np.empty(n, dtype=np.float64)
    near_pos[near] = np.arange(n)
    any_pos = np.empty(n, dtype=np.float64)
    any_pos[anywhere] = np.arange(n)
    bias = spec.tile_city_bias
    # Merge the two streams, each advancing at its own rate; a tile comes when the
    # first of them reaches it.
    with np.errstate(divide="ignore"):
        near_time = near_pos / bias if bias > 0 else np.full(n, np.inf)
        any_time = any_pos / (1.0 - bias) if bias < 1 else np.full(n, np.inf)
    return np.lexsort((any_pos, np.minimum(near_time, any_time)))


def make_plan(spec: ArchiveSpec) -> Plan:
    """The plan of ``spec``'s archive; ValueError if the grid cannot hold its Sentinel items."""
    grid = tile_grid()
    days = spec.days
    rev = spec.revisit_days
    t0 = _epoch_ms(spec.start)

    # Sentinel: whole tiles in order, each revisited every `rev` days from its phase.
    n_s2 = spec.sentinel_count
    rng = seeds.rng(spec.seed, seeds.TILES)
    phase = rng.integers(0, rev, size=len(grid))
    visits = np.where(phase < days, (days - 1 - phase) // rev + 1, 0)
    ordered = _tile_order(spec, grid, rng)
    cum = np.cumsum(visits[ordered])
    if n_s2 > (int(cum[-1]) if len(cum) else 0):
        raise ValueError(
            f"ArchiveSpec asks for {n_s2} Sentinel items but the grid holds "
            f"{int(cum[-1])} over {days} days: lower size or sentinel_share"
        )
    n_tiles = int(np.searchsorted(cum, n_s2, side="left")) + 1 if n_s2 else 0
    tiles = ordered[:n_tiles]
    take = visits[tiles].copy()
    if n_tiles:
        take[-1] -= int(cum[n_tiles - 1]) - n_s2
    s2_tile = np.repeat(tiles, take)
    s2_visit = np.arange(n_s2) - np.repeat(np.cumsum(take) - take, take)
    rng = seeds.rng(spec.seed, seeds.SENTINEL)
    jitter = np.clip(rng.normal(0.0, 3.0, size=n_s2), -15.0, 15.0) * 60_000
    tod = (10.5 * _MS_PER_HOUR - grid.lon[s2_tile] / 15.0 * _MS_PER_HOUR + jitter) % _MS_PER_DAY
    day = phase[s2_tile] + rev * s2_visit
    s2_ts = t0 + day * _MS_PER_DAY + np.floor(tod).astype(np.int64)

    # Commercial: a seeded popularity and spread per city, uniform days, 08:00-15:00 local.
    n_c = spec.commercial_count
    rng = seeds.rng(spec.seed, seeds.COMMERCIAL)
    popularity = rng.lognormal(0.0, 1.0, size=len(CITIES))
    spread = np.clip(rng.lognormal(math.log(10.0), 0.5, size=len(CITIES)), 3.0, 40.0)
    c_city = rng.choice(len(CITIES), size=n_c, p=popularity / popularity.sum())
    c_day = rng.integers(0, days, size=n_c)
    local = rng.uniform(8.0, 15.0, size=n_c)
    city_lon = np.array([c.lon for c in CITIES])[c_city]
    c_tod = ((local - city_lon / 15.0) * _MS_PER_HOUR) % _MS_PER_DAY
    c_ts = t0 + c_day * _MS_PER_DAY + np.floor(c_tod).astype(np.int64)
    by_time = np.argsort(c_ts, kind="stable")  # number commercial items in time order
    c_city, c_ts = c_city[by_time], c_ts[by_time]

    ts = np.concatenate([s2_ts, c_ts]).astype(np.int64)
    order = np.argsort(ts, kind="stable").astype(np.int64)
    return Plan(
        n_sentinel=n_s2,
        order=order,
        s2_tile=s2_tile.astype(np.int64),
        s2_visit=s2_visit.astype(np.int64),
        city=c_city.astype(np.int64),
        city_spread_km=spread,
        ts_ms=ts,
    )
