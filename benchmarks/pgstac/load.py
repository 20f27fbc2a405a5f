"""pgstac's database: ``pypgstac migrate``, the archive's rows loaded as STAC items, and the
cluster-wide roles the migration creates."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
from pypgstac.migrate import Migrate
from sqlalchemy.engine import URL

from benchmarks.db import (
    create_database,
)
from benchmarks.pgstac.queries import _stamp
from noctis.db import libpq_dsn


@dataclass
class PgstacLoad:
    database: str
    version: str = ""
    migrate_s: float = 0.0
    read_s: float = 0.0
    load_s: float = 0.0
    analyze_s: float = 0.0
    items: int = 0
    collections: int = 0
    partitions: int = 0
    table_bytes: int = 0
    index_bytes: int = 0
    settings: dict[str, str] = field(default_factory=dict)


def _collection(name: str) -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": name,
        "description": f"Noctis' synthetic archive: {name}",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [["2019-01-01T00:00:00Z", None]]},
        },
        "links": [],
    }


def _item(row: asyncpg.Record) -> dict[str, Any]:
    properties: dict[str, Any] = json.loads(row["properties"]) if row["properties"] else {}
    properties["datetime"] = _stamp(row["acquired_at"])
    if row["cloud_cover"] is not None:
        properties["eo:cloud_cover"] = row["cloud_cover"]
    if row["gsd"] is not None:
        properties["gsd"] = row["gsd"]
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": row["external_id"],
        "collection": row["collection"],
        "geometry": json.loads(row["geometry"]),
        "properties": properties,
        "links": [],
        "assets": {},
    }


ITEMS_SQL: Final = """
SELECT external_id, collection, ST_AsGeoJSON(footprint, 15) AS geometry, acquired_at,
       cloud_cover::float8 AS cloud_cover, gsd::float8 AS gsd, properties::text AS properties
FROM archive_item ORDER BY id
"""


async def build_pgstac(
    admin_url: URL, noctis_url: URL, *, log: Callable[[str], None]
) -> tuple[PgstacLoad, URL]:
    """A database with pgstac migrated in and the archive's items loaded by pypgstac."""
    name = f"pgstac_bench_{uuid.uuid4().hex[:6]}"
    load = PgstacLoad(database=name)
    url = await create_database(admin_url, name)
    db = PgstacDB(dsn=libpq_dsn(url))
    try:
        started = time.perf_counter()
        load.version = await asyncio.to_thread(Migrate(db).run_migration)
        load.migrate_s = time.perf_counter() - started
        log(f"  pypgstac migrate -> pgstac {load.version}: {load.migrate_s:.1f} s")

        started = time.perf_counter()
        conn = await asyncpg.connect(libpq_dsn(noctis_url))
        try:
            rows = await conn.fetch(ITEMS_SQL)
            names = [r[0] for r in await conn.fetch("SELECT DISTINCT collection FROM archive_item")]
        finally:
            await conn.close()
        items = [_item(r) for r in rows]
        del rows
        load.read_s = time.perf_counter() - started
        load.items, load.collections = len(items), len(names)
        log(f"  {len(items):,} items read back as STAC: {load.read_s:.1f} s")

        loader = Loader(db)
        await asyncio.to_thread(
            loader.load_collections, iter([_collection(n) for n in sorted(names)]), Methods.insert
        )
        started = time.perf_counter()
        await asyncio.to_thread(loader.load_items, iter(items), Methods.insert)
        load.load_s = time.perf_counter() - started
        log(f"  pypgstac Loader.load_items: {load.load_s:.1f} s")
    finally:
        db.close()

    conn = await asyncpg.connect(libpq_dsn(url), server_settings={"search_path": "pgstac,public"})
    try:
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE pgstac.items")
        load.analyze_s = time.perf_counter() - started
        load.partitions = int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'pgstac.items'::regclass"
            )
        )
        row = await conn.fetchrow(
            """
            SELECT coalesce(sum(pg_relation_size(c.oid)), 0) AS heap,
                   coalesce(sum(pg_indexes_size(c.oid)), 0) AS idx
            FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
            WHERE i.inhparent = 'pgstac.items'::regclass
            """
        )
        assert row is not None
        load.table_bytes, load.index_bytes = int(row["heap"]), int(row["idx"])
        for setting, value in await conn.fetch(
            "SELECT name, value FROM pgstac.pgstac_settings ORDER BY name"
        ):
            load.settings[str(setting)] = str(value)
    finally:
        await conn.close()
    return load, url


PGSTAC_ROLES: Final = ("pgstac_admin", "pgstac_ingest", "pgstac_read")
"""The cluster-wide roles ``pypgstac migrate`` creates; dropped afterwards unless they were
there before the run."""


async def existing_roles(admin_url: URL) -> set[str]:
    conn = await asyncpg.connect(libpq_dsn(admin_url))
    try:
        rows = await conn.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", list(PGSTAC_ROLES)
        )
    finally:
        await conn.close()
    return {str(r[0]) for r in rows}


async def _drop_roles(admin_url: URL, roles: set[str], log: Callable[[str], None]) -> None:
    """Drop the roles this run created (its pgstac database is gone, so they own nothing)."""
    conn = await asyncpg.connect(libpq_dsn(admin_url))
    try:
        for role in sorted(roles):
            try:
                await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
            except asyncpg.PostgresError as e:  # still used by another database: leave it
                log(f"  role {role} left on the server: {e}")
    finally:
        await conn.close()
