"""The rows of the synthetic archive, drawn block by block from the plan: :func:`generate`.

*Sentinel rows* (``sentinel-2-l2a``, gsd 10 m) take the tile's footprint; their
``external_id`` is ``S2_T{row:03d}{col:03d}_{yyyymmdd}`` (the UTC date).

*Commercial scenes*: ``planet-skysat`` (gsd 0.5-1.0 m), ``maxar-wv3``
(0.3-0.6 m) and ``airbus-spot`` (1.5-3.0 m), rectangles 2.5-15 km a side
rotated by up to ±25°, scattered around their city. ``external_id`` is
``{SKY|WV3|SPOT}_{CITY-CODE}_{n:08d}``, ``n`` numbering the commercial items in
acquisition order.

Footprints are valid Polygons with counter-clockwise exteriors; one that
crosses the antimeridian is split at ±180° into a MultiPolygon (RFC 7946 style),
every coordinate within [-180, 180]. ``cloud_cover`` is 0..100 with
``cloud_null_share`` (2%) nulls; ``properties`` is a small JSON object
(``platform`` plus ``tile`` or ``city``/``country``).

Randomness is drawn per fixed block of 10,000 output rows from a seed derived
from ``(spec.seed, block)``, so rows do not depend on ``batch_size``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Final

import numpy as np
import shapely

from noctis.devtools.synthetic import seeds
from noctis.devtools.synthetic.batch import ArchiveBatch
from noctis.devtools.synthetic.cities import CITIES
from noctis.devtools.synthetic.geometry import (
    DECIMALS,
    KM_PER_DEGREE,
    Objects,
    hex_ewkb,
    wrap_antimeridian,
)
from noctis.devtools.synthetic.grid import tile_grid
from noctis.devtools.synthetic.plan import Plan, make_plan
from noctis.devtools.synthetic.spec import COMMERCIAL, SENTINEL_COLLECTION, ArchiveSpec

__all__ = ["generate"]

_BLOCK: Final = 10_000  # rows drawn from one random stream; independent of batch_size


@lru_cache(maxsize=1)
def _fragments() -> dict[str, Objects]:
    """Pre-built string pieces, indexed by tile, city, collection or platform."""
    grid = tile_grid()
    js = json.dumps
    cities = CITIES
    platforms = [p for c in COMMERCIAL for p in c.platforms]
    return {
        "s2_id": np.array([f"S2_T{code}_" for code in grid.code.tolist()], dtype=object),
        "s2_props": np.array(
            [f', "tile": {js(code)}}}' for code in grid.code.tolist()], dtype=object
        ),
        "s2_platform": np.array(
            ['{"platform": "sentinel-2a"', '{"platform": "sentinel-2b"'], dtype=object
        ),
        "city_code": np.array([f"_{c.code}_" for c in cities], dtype=object),
        "city_props": np.array(
            [f', "city": {js(c.name)}, "country": {js(c.country)}}}' for c in cities],
            dtype=object,
        ),
        "prefix": np.array([c.prefix for c in COMMERCIAL], dtype=object),
        "collection": np.array([c.collection for c in COMMERCIAL], dtype=object),
        "platform": np.array([f'{{"platform": {js(p)}' for p in platforms], dtype=object),
    }


def _block(spec: ArchiveSpec, plan: Plan, number: int) -> ArchiveBatch:
    rows = plan.order[number * _BLOCK : (number + 1) * _BLOCK]
    size = len(rows)
    frag = _fragments()
    grid = tile_grid()
    rng = seeds.rng(spec.seed, seeds.BLOCK, number)
    # Every draw is made for every row of the block, whatever its kind.
    s2_cloud = rng.beta(0.6, 0.7, size=size)
    c_cloud = rng.beta(0.8, 3.0, size=size)
    null_cloud = rng.random(size) < spec.cloud_null_share
    kind = rng.choice(len(COMMERCIAL), size=size, p=[c.weight for c in COMMERCIAL])
    shape = rng.random((size, 4))  # width, length, gsd, platform
    angle = rng.uniform(-25.0, 25.0, size=size)
    offset = np.clip(rng.standard_normal((size, 2)), -3.0, 3.0)

    s2 = rows < plan.n_sentinel
    external_id = np.empty(size, dtype=object)
    collection = np.empty(size, dtype=object)
    footprint = np.empty(size, dtype=object)
    properties = np.empty(size, dtype=object)
    gsd = np.empty(size, dtype=np.float32)
    cloud = np.where(s2, s2_cloud, c_cloud)

    ts = plan.ts_ms[rows]
    acquired = ts.astype("datetime64[ms]")
    day = acquired.astype("datetime64[D]")

    # Sentinel rows: everything but the date and the platform is the tile's.
    if s2.any():
        i = rows[s2]
        tile = plan.s2_tile[i]
        yyyymmdd = np.char.replace(np.datetime_as_string(day[s2]), "-", "").astype(object)
        external_id[s2] = frag["s2_id"][tile] + yyyymmdd
        collection[s2] = SENTINEL_COLLECTION
        footprint[s2] = grid.footprint_hex[tile]
        properties[s2] = frag["s2_platform"][plan.s2_visit[i] % 2] + frag["s2_props"][tile]
        gsd[s2] = 10.0

    # Commercial rows: a rotated rectangle near the item's city.
    c = ~s2
    if c.any():
        j = rows[c] - plan.n_sentinel
        cities = plan.city[j]
        kind_c = kind[c]
        ranges = np.array([[*k.width_km, *k.length_km, *k.gsd] for k in COMMERCIAL])[kind_c]
        u = shape[c]
        width = ranges[:, 0] + u[:, 0] * (ranges[:, 1] - ranges[:, 0])
        length = np.maximum(width, ranges[:, 2] + u[:, 1] * (ranges[:, 3] - ranges[:, 2]))
        gsd[c] = np.round(ranges[:, 4] + u[:, 2] * (ranges[:, 5] - ranges[:, 4]), 2)
        n_platforms = np.array([len(k.platforms) for k in COMMERCIAL])
        first_platform = np.cumsum(n_platforms) - n_platforms
        platform = first_platform[kind_c] + np.floor(u[:, 3] * n_platforms[kind_c]).astype(np.int64)

        city_lon = np.array([x.lon for x in CITIES])[cities]
        city_lat = np.array([x.lat for x in CITIES])[cities]
        spread = plan.city_spread_km[cities]
        lat0 = city_lat + offset[c, 1] * spread / KM_PER_DEGREE
        lon0 = city_lon + offset[c, 0] * spread / (KM_PER_DEGREE * np.cos(np.radians(lat0)))
        lon0 = (lon0 + 180.0) % 360.0 - 180.0
        theta = np.radians(angle[c])
        half = np.stack([width / 2, length / 2], axis=-1)
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=np.float64)
        local = corners[None, :, :] * half[:, None, :]  # km, counter-clockwise
        cos_t, sin_t = np.cos(theta)[:, None], np.sin(theta)[:, None]
        east = local[..., 0] * cos_t - local[..., 1] * sin_t
        north = local[..., 0] * sin_t + local[..., 1] * cos_t
        ring = np.stack(
            [
                lon0[:, None] + east / (KM_PER_DEGREE * np.cos(np.radians(lat0)))[:, None],
                lat0[:, None] + north / KM_PER_DEGREE,
            ],
            axis=-1,
        )
        geoms = wrap_antimeridian(shapely.polygons(np.round(ring, DECIMALS)))
        footprint[c] = hex_ewkb(geoms)
        serial = np.char.zfill((j + 1).astype(str), 8).astype(object)
        external_id[c] = frag["prefix"][kind_c] + frag["city_code"][cities] + serial
        collection[c] = frag["collection"][kind_c]
        properties[c] = frag["platform"][platform] + frag["city_props"][cities]

    cloud = np.round(cloud * 100.0, 2).astype(np.float32)
    cloud[null_cloud] = np.nan
    return ArchiveBatch(
        external_id=external_id,
        collection=collection,
        footprint=footprint,
        acquired_at=np.datetime_as_string(acquired, unit="ms", timezone="UTC").astype(object),
        cloud_cover=cloud,
        gsd=gsd,
        properties=properties,
    )


def generate(spec: ArchiveSpec, *, batch_size: int = 50_000) -> Iterator[ArchiveBatch]:
    """The archive of ``spec``, in acquisition order, ``batch_size`` rows at a time.

    Rows do not depend on ``batch_size``; only the last batch is shorter.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    plan = make_plan(spec)
    pending: list[ArchiveBatch] = []
    held = 0
    for number in range(-(-spec.size // _BLOCK)):
        block = _block(spec, plan, number)
        pending.append(block)
        held += len(block)
        while held >= batch_size:
            merged = pending[0] if len(pending) == 1 else ArchiveBatch.concat(pending)
            yield merged.slice(0, batch_size)
            rest = merged.slice(batch_size, held)
            pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        yield pending[0] if len(pending) == 1 else ArchiveBatch.concat(pending)
