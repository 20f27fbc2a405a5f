"""What the invalid-footprint guard costs on the normal path (docs/reliability.md).

Run by hand (not collected by pytest)::

    uv run python -m benchmarks.guard [--size 200000] [--repeat 9]

It starts a throwaway PostGIS, loads the synthetic archive, and times the coverage of every
match of a city, a region and a country AOI, computed the old way
(``ST_Area(ST_Intersection(footprint, aoi)::geography) / aoi_area``) and the guarded way
(:func:`noctis.repositories.geo.clipped_share`, with its shortcuts), interleaved, median of
``--repeat`` runs each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from geoalchemy2 import Geography, Geometry
from geoalchemy2.shape import from_shape
from sqlalchemy import bindparam, cast, func, select, text

from noctis import migrate
from noctis.db import make_engine
from noctis.devtools.localdb import LocalPostgis
from noctis.devtools.synthetic import (
    ArchiveSpec,
    city_aoi,
    country_aoi,
    load_archive_url,
    region_aoi,
)
from noctis.models import ArchiveItem
from noctis.repositories.geo import clipped_share
from noctis.settings import Settings


async def _measure(settings: Settings, size: int, repeat: int) -> None:
    await load_archive_url(settings.atlas_libpq_url, ArchiveSpec(size=size, seed=7))
    aois = {
        "city 20 km": city_aoi("Milan", km=20),
        "region 250 km": region_aoi("Milan", km=250),
        "country 1000 km, 500 vertices": country_aoi(9.2, 45.5, km=1000),
    }
    engine = make_engine(settings)
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE archive_item"))
        print(f"{size:,} items; median of {repeat} runs, interleaved")
        print("| AOI | matches | plain (ms) | guarded (ms) | overhead |")
        print("|---|---:|---:|---:|---:|")
        for name, shape in aois.items():
            aoi = bindparam("aoi", from_shape(shape, srid=4326), type_=Geometry(srid=4326))
            where = func.ST_Intersects(ArchiveItem.footprint, aoi)
            area = (await conn.execute(select(func.ST_Area(cast(aoi, Geography))))).scalar_one()
            piece = func.ST_Intersection(ArchiveItem.footprint, aoi)
            plain = func.ST_Area(cast(piece, Geography)) / area
            guarded = clipped_share(ArchiveItem.footprint, aoi, aoi_area=area)
            count = select(func.count()).where(where)
            matches = (await conn.execute(count)).scalar_one()
            times: dict[str, list[float]] = {"plain": [], "guarded": []}
            sums: dict[str, float] = {}
            for _ in range(repeat + 1):  # the first round warms the cache, untimed
                for label, expr in (("plain", plain), ("guarded", guarded)):
                    started = time.perf_counter()
                    sums[label] = (
                        await conn.execute(select(func.sum(expr)).where(where))
                    ).scalar_one()
                    times[label].append(time.perf_counter() - started)
            p, g = (statistics.median(times[k][1:]) * 1000 for k in ("plain", "guarded"))
            assert abs(sums["plain"] - sums["guarded"]) <= 1e-6 * sums["plain"], sums
            print(f"| {name} | {matches:,} | {p:.1f} | {g:.1f} | {(g / p - 1) * 100:+.1f}% |")
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.guard")
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with LocalPostgis() as pg:
        settings = Settings(
            atlas_db_url=pg.url("postgres").render_as_string(hide_password=False),
            _env_file=None,
        )
        migrate.upgrade(settings)  # runs its own event loop
        asyncio.run(_measure(settings, args.size, args.repeat))


if __name__ == "__main__":
    main()
