"""``noctis archive load`` against the ways a team usually writes scenes, in one run.

::

    uv run python -m benchmarks.load_stac                   # 100,000 items
    uv run python -m benchmarks.load_stac --write       # ... and replace its section of RESULTS.md
    uv run python -m benchmarks.load_stac --size 20000 --server-url postgresql://...

The synthetic archive (:mod:`noctis.devtools.synthetic`: Sentinel-2 tiles and commercial scenes,
1 in ~50 split at the antimeridian) is written out as newline-delimited STAC items, then loaded
into a fresh migrated database on a private **durable** cluster (fsync on, as in production):

- ``check only``: ``noctis archive load --check``: read, parse and check every item, no database;
- ``loader (fresh)``: ``noctis.loader.load_files`` into an empty archive (COPY + one upsert per
  10,000 items, one transaction);
- ``loader (re-load, unchanged)``: the same file again: every item matched, nothing written;
- ``loader (re-load, all changed)``: every item's cloud cover changed: every row updated;
- ``ORM add_all``: the same parsing and checks, then ``session.add_all`` of ``ArchiveItem``
  objects, flushed every 10,000, one commit (inserts only: it cannot upsert);
- ``per-row upsert``: the same parsing and checks, then one ``INSERT ... ON CONFLICT DO UPDATE``
  per item through the session (what an idempotent loader without COPY does), on
  ``--baseline-size`` items.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import shapely
from geoalchemy2 import WKBElement
from sqlalchemy import text
from sqlalchemy.engine import URL

from benchmarks.db import create_database, server, settings_for
from benchmarks.sections import replace_section
from noctis import migrate
from noctis.db import libpq_dsn, make_engine, make_session_factory
from noctis.devtools.synthetic import ArchiveSpec, generate
from noctis.loader import LoadOptions, check_files, load_files
from noctis.models import ArchiveItem
from noctis.repositories.scenes import COLUMNS
from noctis.settings import Settings
from noctis.stac_files import open_source
from noctis.stac_items import SceneRow, parse_item

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- load_stac:begin -->", "<!-- load_stac:end -->"


def write_items(path: Path, size: int, *, cloud_shift: float = 0.0) -> None:
    """The synthetic archive of ``size`` items as ndjson STAC items."""
    with path.open("w") as out:
        for batch in generate(ArchiveSpec(size=size), batch_size=10_000):
            geometry = shapely.to_geojson(batch.geometries())
            for (ext, coll, _, when, cloud, gsd, props), geom in zip(
                batch.rows(), geometry, strict=True
            ):
                properties = json.loads(props)
                properties["datetime"] = when.isoformat().replace("+00:00", "Z")
                if cloud is not None:
                    properties["eo:cloud_cover"] = min(100.0, round(cloud + cloud_shift, 3))
                properties["gsd"] = gsd
                head = {"type": "Feature", "stac_version": "1.1.0", "id": ext, "collection": coll}
                line = json.dumps(head)[:-1]
                out.write(f'{line}, "geometry": {geom}, "properties": {json.dumps(properties)}}}\n')


def _rows(path: Path) -> list[SceneRow]:
    return [parse_item(e.item) for e in open_source(path).entries]


async def orm_add_all(settings: Settings, path: Path) -> int:
    engine = make_engine(settings, pool_size=1)
    try:
        async with make_session_factory(engine)() as session:
            rows = _rows(path)
            for start in range(0, len(rows), 10_000):
                session.add_all(
                    ArchiveItem(
                        external_id=r.external_id,
                        collection=r.collection,
                        footprint=WKBElement(shapely.to_wkb(r.footprint), srid=4326),
                        acquired_at=r.acquired_at,
                        cloud_cover=r.cloud_cover,
                        gsd=r.gsd,
                        properties=json.loads(r.properties),
                    )
                    for r in rows[start : start + 10_000]
                )
                await session.flush()
                session.expunge_all()
            await session.commit()
            return len(rows)
    finally:
        await engine.dispose()


UPSERT_ONE = text(
    f"INSERT INTO archive_item ({', '.join(COLUMNS)}) VALUES (:external_id, :collection, "
    "ST_GeomFromWKB(:footprint, 4326), :acquired_at, :cloud_cover, :gsd, "
    "CAST(:properties AS jsonb)) "
    "ON CONFLICT (external_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
)


async def per_row_upsert(settings: Settings, path: Path) -> int:
    engine = make_engine(settings, pool_size=1)
    try:
        async with make_session_factory(engine)() as session:
            rows = _rows(path)
            for r in rows:
                values = {c: getattr(r, c) for c in COLUMNS}
                values["footprint"] = shapely.to_wkb(r.footprint)
                await session.execute(UPSERT_ONE, values)
            await session.commit()
            return len(rows)
    finally:
        await engine.dispose()


async def empty(url: URL) -> None:
    conn = await asyncpg.connect(libpq_dsn(url))
    try:
        await conn.execute("TRUNCATE archive_item CASCADE")
        await conn.execute("VACUUM ANALYZE archive_item")
    finally:
        await conn.close()


def timed(label: str, n: int, call: Callable[[], Any], out: dict[str, tuple[int, float]]) -> None:
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    out[label] = (n, seconds)
    print(f"{label:>32}: {n:>9,} items {seconds:8.2f} s {n / seconds:>10,.0f} items/s", flush=True)


def run(size: int, baseline: int, server_url: str | None) -> str:
    load = os.getloadavg()[0]
    results: dict[str, tuple[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, server(server_url, durable=True) as where:
        url = asyncio.run(create_database(where.admin_url, f"bench_load_{uuid.uuid4().hex[:8]}"))
        settings = settings_for(url)
        migrate.upgrade(settings)
        items, changed, small = (Path(tmp) / n for n in ("a.ndjson", "b.ndjson", "c.ndjson"))
        write_items(items, size)
        write_items(changed, size, cloud_shift=0.5)
        write_items(small, baseline)
        mb = items.stat().st_size / 1e6
        print(f"{size:,} items, {mb:.0f} MB of ndjson", flush=True)

        def go(coroutine: Coroutine[Any, Any, Any]) -> Callable[[], Any]:
            return lambda: asyncio.run(coroutine)

        def loader(path: Path) -> Callable[[], Any]:
            return go(load_files([path], settings=settings, options=LoadOptions()))

        timed("check only", size, lambda: check_files([items]), results)
        timed("loader (fresh)", size, loader(items), results)
        timed("loader (re-load, unchanged)", size, loader(items), results)
        timed("loader (re-load, all changed)", size, loader(changed), results)
        asyncio.run(empty(url))
        timed("ORM add_all (fresh)", size, go(orm_add_all(settings, items)), results)
        asyncio.run(empty(url))
        timed("per-row upsert (fresh)", baseline, go(per_row_upsert(settings, small)), results)
        asyncio.run(empty(url))
        timed("loader (fresh, same items)", baseline, loader(small), results)
    return report(results, size, mb, load)


def report(results: dict[str, tuple[int, float]], size: int, mb: float, load: float) -> str:
    fresh = results["loader (fresh)"]
    baseline = results["per-row upsert (fresh)"][0]
    lines = [
        BEGIN,
        "## Loading STAC items (`benchmarks/load_stac.py`)",
        "",
        f"`uv run python -m benchmarks.load_stac --size {size} --baseline-size {baseline} "
        "--write`, "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores shared with other jobs (load "
        f"average {load:.1f} at the start: the ratios, measured side by side, say more than "
        f"the absolute rates), Python {platform.python_version()}, a durable "
        f"private cluster (fsync on). {size:,} synthetic items as ndjson ({mb:.0f} MB); every "
        "number from this one run, each measured once, end to end (read, parse, check, write, "
        "commit).",
        "",
        "| how | items | seconds | items/s | x the ORM |",
        "|---|---:|---:|---:|---:|",
    ]
    orm_n, orm_s = results["ORM add_all (fresh)"]
    for label, (n, seconds) in results.items():
        ratio = (n / seconds) / (orm_n / orm_s)
        lines.append(f"| {label} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} | {ratio:.1f} |")
    check_s = results["check only"][1]
    share = check_s / fresh[1]
    lines += [
        "",
        f"Reading and checking the items (JSON, shapely, the checks) is {share:.0%} of the "
        "loader's time: the database part (binary COPY of 10,000 rows, then one upsert) is the "
        "rest, overlapped with the parsing of the next batch. A re-load that changes nothing "
        "writes nothing (no row version, no trigger fires), so it costs the reading and the "
        "index probes of the upsert.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write(section: str) -> None:
    replace_section(RESULTS, BEGIN, END, section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_stac", description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--baseline-size", type=int, default=20_000, help="per-row upsert items")
    parser.add_argument("--write", action="store_true", help="replace the section in RESULTS.md")
    parser.add_argument("--server-url", help="a PostGIS server to use instead of a private one")
    args = parser.parse_args(argv)
    section = run(args.size, min(args.baseline_size, args.size), args.server_url)
    print(section)
    if args.write:
        write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
