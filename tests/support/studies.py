"""Helpers of the flow tests: the reference match, row counts, backends, runs, seeds."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import psycopg
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import State, TaskRun

from noctis.db import libpq_dsn
from noctis.devtools.reference import reference_coverage_sql, reference_match_sql
from noctis.flows.imagery_finder_study import imagery_finder_study
from noctis.settings import Settings

AUGUR_TOKEN = "augur-token-6c1f0e-for-reliability"


async def coverages(
    conn: psycopg.AsyncConnection, finder: int, dream: int
) -> list[tuple[int, float | None, float | None]]:
    """(archive item id, recorded coverage, the reference's) for each lookup row of a study."""
    sql = reference_coverage_sql(finder="%(finder)s", dream="%(dream)s")
    cur = await conn.execute(sql, {"finder": finder, "dream": dream})
    return [(int(r[0]), r[1], r[2]) for r in await cur.fetchall()]


def admin_dsn(settings: Settings) -> str:
    """A libpq DSN for the settings' database (superuser in the tests)."""
    return libpq_dsn(settings.atlas_url)


async def scalar(conn: psycopg.AsyncConnection, sql: str, params: Any = None) -> Any:
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    return None if row is None else row[0]


async def column(conn: psycopg.AsyncConnection, sql: str, params: Any = None) -> list[Any]:
    cur = await conn.execute(sql, params)
    return [row[0] for row in await cur.fetchall()]


async def reference_ids(conn: psycopg.AsyncConnection, finder: int) -> list[int]:
    return await column(conn, reference_match_sql("%(finder)s"), {"finder": finder})


async def linked_ids(conn: psycopg.AsyncConnection, finder: int, dream: int) -> list[int]:
    return await column(
        conn,
        "SELECT archive_item_id FROM archive_lookup_item "
        "WHERE imagery_finder_id = %s AND dream_id = %s ORDER BY archive_item_id",
        (finder, dream),
    )


async def duplicate_rows(conn: psycopg.AsyncConnection) -> int:
    return int(
        await scalar(
            conn,
            "SELECT count(*) - count(DISTINCT (dream_id, imagery_finder_id, archive_item_id)) "
            "FROM archive_lookup_item",
        )
    )


async def lookup_count(conn: psycopg.AsyncConnection) -> int:
    return int(await scalar(conn, "SELECT count(*) FROM archive_lookup_item"))


async def noctis_backends(conn: psycopg.AsyncConnection) -> int:
    """Noctis' connections to this database (application_name 'noctis')."""
    return int(
        await scalar(
            conn,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = 'noctis' AND datname = current_database()",
        )
    )


async def wait_for_backend(
    conn: psycopg.AsyncConnection, *, query_like: str, within: float = 20.0
) -> int:
    """The pid of Noctis' backend once it waits on a lock in a statement like ``query_like``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pid = await scalar(
            conn,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'noctis' "
            "AND datname = current_database() AND state = 'active' "
            "AND wait_event_type = 'Lock' AND query ILIKE %s LIMIT 1",
            (query_like,),
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no Noctis backend blocked on a statement like {query_like!r}")


async def run_study(finder: int, dream: int) -> State[Any]:
    """One flow run, called directly under the harness; its final state."""
    state: State[Any] = await imagery_finder_study(
        imagery_finder_pk=finder, dream_pk=dream, return_state=True
    )
    return state


def rss_bytes() -> int:
    """This process' resident set size (Linux)."""
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def seed_grid(
    conn: psycopg.AsyncConnection,
    *,
    n: int,
    prefix: str = "grid",
    lon: float = 10.0,
    lat: float = 44.0,
    size: float = 0.3,
) -> None:
    """``n`` square footprints on a 20-column grid from (lon, lat), an hour apart in 2024.

    Cloud cover cycles 0..99 with every 50th unknown; collections alternate.
    """
    await conn.execute(
        """
        INSERT INTO archive_item (external_id, collection, footprint, acquired_at, cloud_cover, gsd)
        SELECT %(prefix)s || '-' || g,
               CASE WHEN g %% 3 = 0 THEN 'landsat-c2-l2' ELSE 'sentinel-2-l2a' END,
               ST_MakeEnvelope(%(lon)s + (g %% 20) * 0.1, %(lat)s + (g / 20 %% 20) * 0.1,
                               %(lon)s + (g %% 20) * 0.1 + %(size)s,
                               %(lat)s + (g / 20 %% 20) * 0.1 + %(size)s, 4326),
               timestamptz '2024-01-01 00:00Z' + g * interval '1 hour',
               CASE WHEN g %% 50 = 0 THEN NULL ELSE (g %% 100)::real END,
               10
        FROM generate_series(1, %(n)s) AS g
        """,
        {"prefix": prefix, "n": n, "lon": lon, "lat": lat, "size": size},
    )


async def add_dream(conn: psycopg.AsyncConnection, name: str = "a study") -> int:
    return int(await scalar(conn, "INSERT INTO dream (name) VALUES (%s) RETURNING id", (name,)))


async def add_finder(
    conn: psycopg.AsyncConnection,
    wkt: str,
    *,
    start: str | None = None,
    end: str | None = None,
    max_cloud_cover: float | None = None,
    collections: list[str] | None = None,
    name: str | None = None,
) -> int:
    return int(
        await scalar(
            conn,
            "INSERT INTO imagery_finder (name, location, start_date, end_date, max_cloud_cover,"
            " collections) VALUES (%s, ST_GeomFromText(%s, 4326), %s, %s, %s, %s) RETURNING id",
            (name, wkt, start, end, max_cloud_cover, collections),
        )
    )


async def task_runs(state: State[Any], *, expect: int, within: float = 15.0) -> dict[str, TaskRun]:
    """The flow run's task runs by task name, once ``expect`` of them reached a final state.

    Prefect 3 records task runs from events, asynchronously: poll until they are all there.
    """
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    deadline = time.monotonic() + within
    async with get_client() as client:
        while True:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            final = [r for r in runs if r.state is not None and r.state.is_final()]
            if len(final) >= expect or time.monotonic() > deadline:
                by_name: dict[str, TaskRun] = {}
                for run in final:
                    by_name.setdefault(_task_name(run), run)
                return by_name
            await asyncio.sleep(0.1)


def _task_name(run: TaskRun) -> str:
    """'link-matches-3f2' -> 'link-matches' (the run name carries a short suffix)."""
    return run.name.rsplit("-", 1)[0]
