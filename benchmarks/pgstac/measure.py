"""The two databases, Noctis' and pgstac's, and one run over the cases."""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
from sqlalchemy.engine import URL

from benchmarks.db import (
    Build,
    build_archive,
    drop_database,
    server,
    size_label,
)
from benchmarks.pgstac.load import PgstacLoad, _drop_roles, build_pgstac, existing_roles
from benchmarks.pgstac.outcomes import Run
from benchmarks.pgstac.queries import (
    EXPLAINED,
    QUERIES,
    SEARCHES,
    Query,
    searches_run,
)
from benchmarks.pgstac.side import Side
from noctis.db import libpq_dsn


async def _facts(url: URL) -> tuple[str, str, int]:
    conn = await asyncpg.connect(libpq_dsn(url))
    try:
        version = str(await conn.fetchval("SHOW server_version"))
        postgis = str(await conn.fetchval("SELECT postgis_lib_version()"))
        midnight = int(
            await conn.fetchval(
                "SELECT count(*) FROM archive_item"
                " WHERE acquired_at = date_trunc('day', acquired_at, 'UTC')"
            )
        )
    finally:
        await conn.close()
    return version, postgis, midnight


@contextlib.asynccontextmanager
async def databases(
    size: int, server_url: str | None, log: Callable[[str], None]
) -> AsyncIterator[tuple[Build, URL, PgstacLoad, URL]]:
    """The archive in Noctis' schema and in pgstac's, on one server; dropped afterwards, with
    the roles ``pypgstac migrate`` created there."""
    with server(server_url, durable=True) as where:
        log(f"server: {where.origin}")
        roles_before = await existing_roles(where.admin_url)
        build, noctis_url = await build_archive(where.admin_url, size, log=log)
        log(f"{size_label(size)} items in Noctis' schema: load {build.load_s:.1f} s")
        try:
            load, pgstac_url = await build_pgstac(where.admin_url, noctis_url, log=log)
            try:
                yield build, noctis_url, load, pgstac_url
            finally:
                await drop_database(where.admin_url, load.database)
        finally:
            await drop_database(where.admin_url, build.database)
            created = await existing_roles(where.admin_url) - roles_before
            await _drop_roles(where.admin_url, created, log)


async def run(
    size: int,
    *,
    runs: int = 5,
    server_url: str | None = None,
    queries: tuple[Query, ...] = QUERIES,
    searches: tuple[str, ...] = tuple(SEARCHES),
    log: Callable[[str], None] = print,
) -> Run:
    """``searches``: the pgstac modes run (see :class:`Side`), e.g. ``SEARCH_SETS[name]``."""
    searches = searches_run(searches)  # before the (long) build, not after it
    start_load = os.getloadavg()[0]
    async with databases(size, server_url, log) as (build, noctis_url, load, pgstac_url):
        side = Side(noctis_url, pgstac_url, runs=runs, size=size, searches=searches)
        await side.open()
        # measure_interleaved collects the garbage before every run; with prefect and
        # SQLAlchemy loaded a full collection takes ~0.2 s on this machine. Frozen, the objects
        # that live through the run are not scanned again: the garbage of each run still is.
        gc.collect()
        gc.freeze()
        try:
            outcomes = [await side.measure(q, log) for q in queries]
            explained = await side.explain(Query(EXPLAINED))
            probes = await side.probe_window_end()
        finally:
            gc.unfreeze()
            await side.close()
        version, postgis, midnight = await _facts(noctis_url)
    return Run(
        size=size,
        runs=runs,
        build=build,
        load=load,
        outcomes=outcomes,
        explained=explained,
        probes=probes,
        server_version=version,
        postgis=postgis,
        boundary_items=midnight,
        load_average=(start_load, os.getloadavg()[0]),
        day=time.strftime("%Y-%m-%d"),
        searches=side.searches,
    )
