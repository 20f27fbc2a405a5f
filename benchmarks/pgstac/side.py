"""pgstac side by side with Noctis: the same items, the same AOI x window cases, the same ids?

::

    uv run python -m benchmarks.pgstac                       # 100k items, 5 runs
    uv run python -m benchmarks.pgstac --size 20k --runs 3
    uv run python -m benchmarks.pgstac --write               # ... and its section of RESULTS.md
    uv run python -m benchmarks.pgstac --json out.json       # ... and the raw figures
    uv run python -m benchmarks.pgstac --from-json out.json --write   # re-render, measure nothing
    uv run python -m benchmarks.pgstac --server-url postgresql://postgres@127.0.0.1:5432/postgres

A private **durable** PostGIS cluster (fsync on, as in production), or the given server, gets
two databases:

- ``noctis``: the synthetic archive built by :func:`benchmarks.db.build_archive` (Alembic
  migrations, COPY, the GiST index, ANALYZE, VACUUM), as the other benchmarks build it;
- ``pgstac``: ``pypgstac migrate`` (pgstac's own schema, functions and settings), its
  collections, then the **same rows** read back from the first database and loaded with
  pypgstac's ``Loader`` as STAC items: id = ``external_id``, geometry = ``footprint``,
  ``datetime`` = ``acquired_at``, ``eo:cloud_cover`` = ``cloud_cover`` (left out when null),
  the stored properties and ``gsd``; then VACUUM ANALYZE, as the archive gets.

Each case of :mod:`benchmarks.cases` (and one with a cloud-cover filter) is then answered, the
approaches taking turns run by run (:func:`benchmarks.stats.measure_interleaved`), by:

- ``Noctis match``: the ids (``external_id``) of the repository's match rule
  (:func:`noctis.repositories.archive.match_conditions`) on the async session, with the
  repository's custom plan and JIT off;
- ``Noctis link``: the link step as :mod:`benchmarks.matching` times it (lock,
  ``LookupRepository.link``, commit), from an empty lookup table each run;
- ``pgstac``: ``SELECT pgstac.search($1)`` with ``fields`` = ``{"include": ["id"]}`` and a
  ``limit`` of the archive's size, so one page holds every match;
- ``pgstac nohydrate``: the same with ``"conf": {"nohydrate": true}``.

Times are the median wall time of one statement (or the link's transaction) on an open
connection, as the caller waits for it; beside them, the server's own execution time
(``EXPLAIN (ANALYZE, TIMING OFF)``, median of the same number of runs). Every id set is
compared with Noctis'; then one search is taken apart (EXPLAIN (ANALYZE, BUFFERS), its
phases, and the plans of the statements it runs, from auto_explain).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import platform
import re
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Final

import asyncpg
import shapely
from pypgstac import __version__ as PYPGSTAC_VERSION
from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
from pypgstac.migrate import Migrate
from shapely.geometry.base import BaseGeometry
from sqlalchemy import event, select
from sqlalchemy.engine import URL

from benchmarks.cases import ALL_CASES, PLACE, Case, aoi
from benchmarks.db import (
    Build,
    build_archive,
    create_database,
    drop_database,
    parse_size,
    server,
    size_label,
)
from benchmarks.matching import Bench, Caps, Study
from benchmarks.sections import replace_section
from benchmarks.stats import measure_interleaved
from noctis.db import libpq_dsn
from noctis.devtools.synthetic import SENTINEL_COLLECTION, box_aoi
from noctis.models import ArchiveItem
from noctis.repositories.archive import CUSTOM_PLAN, match_conditions
from noctis.study import check_study
from noctis.unit_of_work import UnitOfWork

RESULTS: Final = Path(__file__).with_name("RESULTS.md")
MARKERS: Final = "<!-- pgstac-{size}:begin -->", "<!-- pgstac-{size}:end -->"
"""Each archive size has its own section of RESULTS.md."""

MATCH: Final = "Noctis match"
LINK: Final = "Noctis link"
PGSTAC: Final = "pgstac"
NOHYDRATE: Final = "pgstac nohydrate"
APPROACHES: Final = (MATCH, LINK, PGSTAC, NOHYDRATE)
SEARCHES: Final = {PGSTAC: False, NOHYDRATE: True}
"""The pgstac modes, and whether each sets ``conf.nohydrate``."""

CLOUD_CASE: Final = Case("region", "1 year")
CLOUD_MAX: Final = 20.0
ANTIMERIDIAN_KM: Final = 150.0
ONE_MICROSECOND: Final = timedelta(microseconds=1)
DATETIME_FORMS: Final = ("inclusive end", "bare dates")
"""The other spellings of the window checked (untimed) against Noctis' ids."""
EXPLAINED: Final = Case("country", "5 years")
"""The search taken apart: the most matches."""
NESTED_MIN_MS: Final = 1.0
"""auto_explain logs the nested statements of the taken-apart search that take at least this."""


# ------------------------------------------------------------------ the cases


@dataclass(frozen=True)
class Query:
    """A case of :mod:`benchmarks.cases` (or an AOI of its own), with a cloud-cover maximum or
    none."""

    case: Case
    max_cloud: float | None = None
    shape: BaseGeometry | None = None
    """The AOI when it is not one of :mod:`benchmarks.cases`' (``case.aoi`` names it)."""

    @property
    def geometry(self) -> BaseGeometry:
        return self.shape if self.shape is not None else aoi(self.case.aoi)

    @property
    def ewkb(self) -> bytes:
        return bytes(shapely.to_wkb(self.geometry, include_srid=True))

    @property
    def key(self) -> str:
        return self.case.key + ("" if self.max_cloud is None else f", cloud ≤ {self.max_cloud:g}")

    @property
    def start(self) -> datetime:
        """Noctis' window: ``[start 00:00 UTC, end + 1 day 00:00 UTC)``."""
        return datetime.combine(self.case.start, dtime(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.case.end + timedelta(days=1), dtime(0), tzinfo=UTC)


ANTIMERIDIAN: Final = Query(
    Case("antimeridian", "5 years"), shape=box_aoi(180.0, -17.5, km=ANTIMERIDIAN_KM)
)
"""A 150 km square centred on 180°, 17.5° S (by Fiji), split at the antimeridian as RFC 7946
says: a MultiPolygon from 179.29° E to 180° and from -180° to 179.29° W."""
QUERIES: Final = (
    *(Query(c) for c in ALL_CASES),
    Query(CLOUD_CASE, CLOUD_MAX),
    ANTIMERIDIAN,
)
READONLY_SMALL: Final = Query(Case("point", "1 month"))
"""A small search, where pgstac's write to its searches table is a large share."""
PROBED: Final = Query(Case("city", "1 month"))
"""The case the window-end probes are put in."""


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stac_datetime(query: Query, form: str = "aligned") -> str:
    """The window as a STAC ``datetime`` interval (closed at both ends in STAC).

    ``aligned``: the end is Noctis' exclusive end less one microsecond (timestamptz's
    resolution), so the closed interval holds exactly the half-open window's instants.
    ``inclusive end``: Noctis' end as is (a scene at exactly 00:00 of the day after the window
    matches in pgstac, not in Noctis). ``bare dates``: the finder's dates as written.
    """
    if form == "aligned":
        return f"{_stamp(query.start)}/{_stamp(query.end - ONE_MICROSECOND)}"
    if form == "inclusive end":
        return f"{_stamp(query.start)}/{_stamp(query.end)}"
    if form == "bare dates":
        return f"{query.case.start.isoformat()}/{query.case.end.isoformat()}"
    raise ValueError(f"unknown datetime form {form!r}")


def stac_search(
    query: Query, *, limit: int, nohydrate: bool = False, form: str = "aligned"
) -> dict[str, Any]:
    """The body of ``pgstac.search()`` for ``query``: ids only, every match on one page."""
    body: dict[str, Any] = {
        "intersects": json.loads(shapely.to_geojson(query.geometry)),
        "datetime": stac_datetime(query, form),
        "fields": {"include": ["id"]},
        "limit": limit,
    }
    if query.max_cloud is not None:
        body["filter-lang"] = "cql2-json"
        body["filter"] = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, query.max_cloud]}
    if nohydrate:
        body["conf"] = {"nohydrate": True}
    return body


# ------------------------------------------------------------------ pgstac's database


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


# ------------------------------------------------------------------ measuring


@dataclass
class Outcome:
    key: str
    rows: int
    """Noctis' matches."""
    link_rows: int = 0
    found: dict[str, int] = field(default_factory=dict)
    """Ids each pgstac mode returned."""
    equal: dict[str, bool] = field(default_factory=dict)
    only_noctis: dict[str, list[str]] = field(default_factory=dict)
    only_pgstac: dict[str, list[str]] = field(default_factory=dict)
    forms: dict[str, int] = field(default_factory=dict)
    """Ids returned (nohydrate: the same WHERE, cheaper) by the other spellings of the window."""
    forms_equal: dict[str, bool] = field(default_factory=dict)
    wall: dict[str, list[float]] = field(default_factory=dict)
    server: dict[str, list[float]] = field(default_factory=dict)

    def median(self, approach: str, *, server: bool = False) -> float:
        return statistics.median((self.server if server else self.wall)[approach])

    @staticmethod
    def from_json(data: dict[str, Any]) -> Outcome:
        return Outcome(**data)


@dataclass
class Explained:
    key: str
    search: dict[str, Any]
    plan: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    """ms: parse and record the search, fetch the rows, the whole search."""
    rows: int = 0
    readonly_wall: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per case: wall seconds of the search with pgstac.readonly off (the default) and on."""
    rows_plan: str = ""
    nested: list[tuple[float, str]] = field(default_factory=list)
    """(ms, first lines of the plan) of the nested statements over NESTED_MIN_MS."""
    default_limit_returned: int = 0


@dataclass
class Run:
    size: int
    runs: int
    build: Build
    load: PgstacLoad
    outcomes: list[Outcome]
    explained: Explained
    probes: dict[str, list[str]] = field(default_factory=dict)
    """Which of the window-edge probe scenes each rule matched."""
    server_version: str = ""
    postgis: str = ""
    boundary_items: int = 0
    """Archive items acquired at exactly 00:00:00 UTC (where an inclusive end bites)."""
    load_average: tuple[float, float] = (0.0, 0.0)
    day: str = ""
    """The day it ran (YYYY-MM-DD)."""


class Side:
    """Noctis' and pgstac's connections, and the approaches ready to be timed."""

    def __init__(self, noctis_url: URL, pgstac_url: URL, *, runs: int, size: int) -> None:
        self.bench = Bench(noctis_url, runs=runs, warmups=1, caps=Caps())
        self.pgstac_url = pgstac_url
        self.runs = runs
        self.limit = max(size, 1)
        self.captured: list[tuple[str, tuple[Any, ...]]] = []

    async def open(self) -> None:
        await self.bench.open()
        self.pg = await asyncpg.connect(
            libpq_dsn(self.pgstac_url),
            server_settings={"search_path": "pgstac,public", "statement_timeout": "0"},
        )
        # pgstac at its documented best for ids only: nohydrate, and pgstac.readonly on (no
        # upsert of the search into pgstac.searches, so no write and no commit per search).
        self.pg_best = await asyncpg.connect(
            libpq_dsn(self.pgstac_url),
            server_settings={
                "search_path": "pgstac,public",
                "statement_timeout": "0",
                "pgstac.readonly": "on",
            },
        )
        self.conns = {PGSTAC: self.pg, NOHYDRATE: self.pg_best}
        event.listen(self.bench.engine.sync_engine, "before_cursor_execute", self._on_execute)

    async def close(self) -> None:
        await self.pg.close()
        await self.pg_best.close()
        await self.bench.close()

    async def readonly_wall(self, body: str) -> dict[str, float]:
        """Median wall seconds of one search with pgstac.readonly off (the default) and on."""
        readonly = await asyncpg.connect(
            libpq_dsn(self.pgstac_url),
            server_settings={"search_path": "pgstac,public", "pgstac.readonly": "on"},
        )
        try:

            async def on() -> int:
                return len(str(await readonly.fetchval("SELECT search($1::jsonb)::text", body)))

            async def off() -> int:
                return len(await self.search(body))

            timed = await measure_interleaved([(off, None), (on, None)], runs=self.runs, warmups=1)
        finally:
            await readonly.close()
        return {
            "off": statistics.median(t for t, _ in timed[0]),
            "on": statistics.median(t for t, _ in timed[1]),
        }

    def _on_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().startswith("SELECT archive_item.external_id"):
            self.captured.append((statement, tuple(parameters or ())))

    async def study(self, query: Query) -> Study:
        """A finder and a dream for the query, and the criteria ``check_study`` builds."""
        case = query.case
        ewkb = query.ewkb
        finder_id = int(
            await self.bench.admin.fetchval(
                "INSERT INTO imagery_finder (name, location, start_date, end_date,"
                " max_cloud_cover) VALUES ($1, ST_GeomFromEWKB($2), $3, $4, $5) RETURNING id",
                f"pgstac bench {query.key}",
                ewkb,
                case.start,
                case.end,
                query.max_cloud,
            )
        )
        dream_id = await self.bench.new_dream(f"pgstac bench {query.key}")
        async with UnitOfWork(self.bench.factory) as uow:
            checked = await check_study(uow, finder_id=finder_id, dream_id=dream_id)
        return Study(case, finder_id, dream_id, checked, ewkb)

    async def noctis_ids(self, study: Study) -> list[str]:
        """The ids of the repository's match rule, as ``ArchiveRepository.search`` runs it."""
        stmt = select(ArchiveItem.external_id).where(*match_conditions(study.checked.criteria))
        async with self.bench.factory() as session:
            await session.execute(CUSTOM_PLAN)
            return list((await session.scalars(stmt)).all())

    async def search(self, body: str) -> str:
        return str(await self.pg.fetchval("SELECT search($1::jsonb)::text", body))

    async def search_ids(self, body: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """Every id one search returns; raises if it did not return them all on one page."""
        result = json.loads(await self.search(json.dumps(body)))
        ids = [str(f["id"]) for f in result["features"]]
        if any(link.get("rel") == "next" for link in result.get("links", [])):
            raise RuntimeError(f"pgstac returned a next page at limit {body.get('limit')}")
        if result.get("numberReturned") != len(ids):
            raise RuntimeError(f"numberReturned {result.get('numberReturned')} != {len(ids)}")
        return ids, result

    async def explain_ms(self, conn: asyncpg.Connection, statement: str, *args: Any) -> float:
        plan = await conn.fetchval("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + statement, *args)
        return float(json.loads(plan)[0]["Execution Time"])

    async def measure(self, query: Query, log: Callable[[str], None]) -> Outcome:
        study = await self.study(query)
        self.captured.clear()
        noctis = await self.noctis_ids(study)
        statement, params = self.captured[-1]
        outcome = Outcome(key=query.key, rows=len(noctis))
        expected = set(noctis)
        if len(expected) != len(noctis):
            raise RuntimeError(f"{query.key}: Noctis returned duplicate ids")

        bodies = {
            mode: json.dumps(stac_search(query, limit=self.limit, nohydrate=nohydrate))
            for mode, nohydrate in SEARCHES.items()
        }
        for mode, nohydrate in SEARCHES.items():
            ids, _ = await self.search_ids(
                stac_search(query, limit=self.limit, nohydrate=nohydrate)
            )
            got = set(ids)
            outcome.found[mode] = len(ids)
            outcome.equal[mode] = got == expected and len(ids) == len(got)
            outcome.only_noctis[mode] = sorted(expected - got)[:5]
            outcome.only_pgstac[mode] = sorted(got - expected)[:5]
        for form in DATETIME_FORMS:
            body = stac_search(query, limit=self.limit, nohydrate=True, form=form)
            ids, _ = await self.search_ids(body)
            outcome.forms[form] = len(ids)
            outcome.forms_equal[form] = set(ids) == expected

        async def link() -> int:
            return await self.bench.link(study.checked)

        async def match() -> int:
            return len(await self.noctis_ids(study))

        def searcher(mode: str) -> Callable[[], Any]:
            conn, body = self.conns[mode], bodies[mode]

            async def run() -> int:
                return len(str(await conn.fetchval("SELECT search($1::jsonb)::text", body)))

            return run

        entries: list[tuple[Callable[[], Any], Callable[[], Any] | None]] = [
            (match, None),
            (link, self.bench.truncate),
            (searcher(PGSTAC), None),
            (searcher(NOHYDRATE), None),
        ]
        results = await measure_interleaved(entries, runs=self.runs, warmups=1)
        for name, timed in zip(APPROACHES, results, strict=True):
            outcome.wall[name] = [s for s, _ in timed]
        outcome.link_rows = int(results[1][-1][1])
        await self.bench.truncate()

        # The server's own time: the same statements under EXPLAIN (ANALYZE, TIMING OFF).
        raw = self.bench.raw  # force_custom_plan and JIT off, as the repository sets them
        server: dict[str, list[float]] = {MATCH: [], PGSTAC: [], NOHYDRATE: []}
        for _ in range(self.runs):
            server[MATCH].append(await self.explain_ms(raw, statement, *params))
            for mode in SEARCHES:
                server[mode].append(
                    await self.explain_ms(
                        self.conns[mode], "SELECT search($1::jsonb)", bodies[mode]
                    )
                )
        outcome.server = server
        log(
            f"  {query.key}: {outcome.rows:,} rows; "
            + ", ".join(f"{a} {outcome.median(a) * 1000:.1f} ms" for a in APPROACHES)
            + "; ids equal: "
            + ", ".join(f"{m} {outcome.equal[m]}" for m in SEARCHES)
        )
        return outcome

    async def probe_window_end(self) -> dict[str, list[str]]:
        """Scenes at the window's edges, put in both stores (after the timing): which of them
        Noctis' rule and each spelling of pgstac's window match."""
        q = PROBED
        moments = {
            "first instant": q.start,
            "last microsecond": q.end - ONE_MICROSECOND,
            "next midnight": q.end,
            "instant before": q.start - ONE_MICROSECOND,
        }
        footprint = shapely.buffer(shapely.Point(PLACE.lon, PLACE.lat), 0.01, quad_segs=1)
        probes = {f"probe {name}": moment for name, moment in moments.items()}
        for external_id, moment in probes.items():
            await self.bench.admin.execute(
                "INSERT INTO archive_item (external_id, collection, footprint, acquired_at,"
                " cloud_cover, properties) VALUES ($1, $2, ST_GeomFromEWKB($3), $4, 10, '{}')",
                external_id,
                SENTINEL_COLLECTION,
                bytes(shapely.to_wkb(shapely.set_srid(footprint, 4326), include_srid=True)),
                moment,
            )
            item = {
                "type": "Feature",
                "stac_version": "1.1.0",
                "id": external_id,
                "collection": SENTINEL_COLLECTION,
                "geometry": json.loads(shapely.to_geojson(footprint)),
                "properties": {"datetime": _stamp(moment), "eo:cloud_cover": 10},
                "links": [],
                "assets": {},
            }
            await self.pg.execute("SELECT create_item($1::jsonb)", json.dumps(item))
        study = await self.study(q)
        matched = {"Noctis": sorted(set(await self.noctis_ids(study)) & probes.keys())}
        for form in ("aligned", *DATETIME_FORMS):
            ids, _ = await self.search_ids(stac_search(q, limit=self.limit + 10, form=form))
            matched[f"pgstac, {form}"] = sorted(set(ids) & probes.keys())
        return {k: [p.removeprefix("probe ") for p in v] for k, v in matched.items()}

    async def explain(self, query: Query) -> Explained:
        """One search taken apart: its plan, its phases, the plans of what it runs."""
        body = stac_search(query, limit=self.limit)
        text = json.dumps(body)
        out = Explained(key=query.key, search=body)
        rows = await self.pg.fetch("EXPLAIN (ANALYZE, BUFFERS) SELECT search($1::jsonb)", text)
        out.plan = "\n".join(str(r[0]) for r in rows)

        # The phases, each timed on the server (median of the runs): search_query (parse the
        # body into a WHERE and an ORDER BY, record the search), search_rows (chunker, then one
        # query per chunk), and the whole call (the rows, then format_item on each).
        where, orderby = await self.pg.fetchrow(
            "SELECT _where, orderby FROM search_query($1::jsonb)", text
        )
        phases: dict[str, tuple[str, tuple[Any, ...]]] = {
            "search_query (parse, record)": ("SELECT search_query($1::jsonb)", (text,)),
            "search_rows (the rows)": (
                "SELECT count(*) FROM search_rows($1, $2, NULL, $3)",
                (where, orderby, self.limit + 1),
            ),
            "search (the whole call)": ("SELECT search($1::jsonb)", (text,)),
        }
        for name, (statement, args) in phases.items():
            times = [await self.explain_ms(self.pg, statement, *args) for _ in range(self.runs)]
            out.phases[name] = statistics.median(times)
        out.rows = int(
            await self.pg.fetchval(
                phases["search_rows (the rows)"][0], *phases["search_rows (the rows)"][1]
            )
        )

        # What the write to pgstac.searches costs (readonly = false): the wall time of the
        # search, taking turns with the same search under pgstac.readonly = on; on this case and
        # on a small one, where the write is a larger share.
        for q in (query, READONLY_SMALL):
            out.readonly_wall[q.key] = await self.readonly_wall(
                json.dumps(stac_search(q, limit=self.limit))
            )

        plain = await self.pg.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM items WHERE {where} ORDER BY {orderby}"
        )
        out.rows_plan = "\n".join(str(r[0]) for r in plain)

        # The statements search() runs, with auto_explain's plans (LOG messages to the client).
        messages: list[str] = []

        def listener(_: Any, message: Any) -> None:
            messages.append(str(getattr(message, "message", message)))

        self.pg.add_log_listener(listener)
        try:
            await self.pg.execute("LOAD 'auto_explain'")
            for setting, value in (
                ("auto_explain.log_min_duration", f"{NESTED_MIN_MS}ms"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_buffers", "on"),
                ("auto_explain.log_timing", "on"),
                ("auto_explain.log_nested_statements", "on"),
                ("client_min_messages", "log"),
            ):
                await self.pg.execute(f"SET {setting} = '{value}'")
            await self.pg.fetchval("SELECT search($1::jsonb)::text", text)
        finally:
            await self.pg.execute("RESET client_min_messages")
            await self.pg.execute("SET auto_explain.log_min_duration = -1")
            self.pg.remove_log_listener(listener)
        for message in messages:
            ms = _duration_ms(message)
            if ms is not None:
                out.nested.append((ms, message))

        unlimited = {k: v for k, v in body.items() if k != "limit"}
        result = json.loads(await self.search(json.dumps(unlimited)))
        out.default_limit_returned = int(result.get("numberReturned", 0))
        return out


def _duration_ms(message: str) -> float | None:
    head = message.split("\n", 1)[0]
    if not head.startswith("duration:"):
        return None
    try:
        return float(head.split()[1])
    except (IndexError, ValueError):
        return None


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
    log: Callable[[str], None] = print,
) -> Run:
    start_load = os.getloadavg()[0]
    async with databases(size, server_url, log) as (build, noctis_url, load, pgstac_url):
        side = Side(noctis_url, pgstac_url, runs=runs, size=size)
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
    )


# ------------------------------------------------------------------ the report


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:,.1f}" if ms < 100 else f"{ms:,.0f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


def _same(outcome: Outcome) -> str:
    verdicts = [("yes" if outcome.equal[m] else f"**NO** ({outcome.found[m]:,})") for m in SEARCHES]
    return " / ".join(verdicts)


def report(r: Run, *, command: str | None = None) -> str:
    begin, end = (m.format(size=size_label(r.size)) for m in MARKERS)
    label = size_label(r.size)
    command = command or f"uv run python -m benchmarks.pgstac --size {label} --runs {r.runs}"
    load = r.load
    all_equal = all(all(o.equal.values()) for o in r.outcomes)
    lines = [
        begin,
        f"## pgstac side by side, {label} items, on {os.cpu_count()} shared cores "
        "(`benchmarks/pgstac.py`)",
        "",
        f"`{command}`, {r.day or time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores shared "
        f"with other jobs (load average {r.load_average[0]:.1f} at the start, "
        f"{r.load_average[1]:.1f} at the end: the ratios, measured taking turns, say more "
        "than the absolute times), "
        f"Python {platform.python_version()}, PostgreSQL {r.server_version}, PostGIS "
        f"{r.postgis}, pgstac {load.version} (pypgstac {PYPGSTAC_VERSION}), both databases on "
        "one durable server (fsync on). Median of "
        f"{r.runs} runs after a warm-up, the approaches taking turns.",
        "",
        f"The same {load.items:,} items in both: Noctis' archive built by `build_archive` (COPY "
        f"{r.build.copy_s:.1f} s, GiST index {r.build.index_s:.1f} s, ANALYZE "
        f"{r.build.analyze_s:.1f} s), then read back as STAC items and loaded by pypgstac's "
        f"`Loader.load_items` in {load.load_s:.1f} s (plus VACUUM ANALYZE {load.analyze_s:.1f} "
        f"s; `pypgstac migrate` {load.migrate_s:.1f} s) into {load.collections} collections, "
        f"{load.partitions} partitions (no `partition_trunc`: one per collection). Sizes: "
        f"Noctis {r.build.table_bytes / 1e6:.0f} MB heap + "
        f"{(r.build.gist_bytes + r.build.other_index_bytes) / 1e6:.0f} MB indexes, pgstac "
        f"{load.table_bytes / 1e6:.0f} MB + {load.index_bytes / 1e6:.0f} MB.",
        "",
        "pgstac's search, as sent: `intersects` = the AOI, `datetime` = "
        "`<start>T00:00:00.000000Z/<end>T23:59:59.999999Z` (Noctis' exclusive end less one "
        'microsecond), `fields` = `{"include": ["id"]}`, `limit` = '
        f"{r.size:,} (the archive's size, so one page holds every match: no `next` link, "
        "checked), the cloud case with the cql2-json filter `eo:cloud_cover <= "
        f"{CLOUD_MAX:g}`; *nohydrate* is pgstac at its documented best for ids only: it adds "
        '`"conf": {{"nohydrate": true}}` (no item hydration) and runs with `pgstac.readonly` = '
        "`on` (no upsert of the search into `pgstac.searches`: no write, no commit). Otherwise "
        "pgstac's settings as `pypgstac migrate` leaves them: "
        + ", ".join(f"`{k}` = `{v}`" for k, v in sorted(load.settings.items()))
        + ". Noctis *match*: `select(ArchiveItem.external_id).where(*match_conditions(...))` "
        "on the async session (custom plan, JIT off); *link*: the link step as "
        "`benchmarks/matching.py` times it (lock, `LookupRepository.link` with the coverage, "
        "commit), from an empty lookup table.",
        "",
        "Wall time, ms (what the caller waits for, one statement on an open connection):",
        "",
        "| Case | Rows | Noctis match | Noctis link | pgstac | pgstac nohydrate "
        "| pgstac / match | nohydrate / match | pgstac / link | nohydrate / link "
        "| Same ids (pgstac / nohydrate) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for o in r.outcomes:
        m, lk, p, n = (o.median(a) for a in APPROACHES)
        lines.append(
            f"| {o.key} | {o.rows:,} | {_ms(m)} | {_ms(lk)} | {_ms(p)} | {_ms(n)} | "
            f"{_ratio(p, m)} | {_ratio(n, m)} | {_ratio(p, lk)} | {_ratio(n, lk)} | {_same(o)} |"
        )
    lines += [
        "",
        "Server time, ms (`EXPLAIN (ANALYZE, TIMING OFF)`: the statement's execution, without "
        "sending the rows; Noctis' match is the statement the session sent):",
        "",
        "| Case | Rows | Noctis match | pgstac | pgstac nohydrate | pgstac / match "
        "| nohydrate / match |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for o in r.outcomes:
        m, p, n = (o.median(a, server=True) for a in (MATCH, PGSTAC, NOHYDRATE))
        lines.append(
            f"| {o.key} | {o.rows:,} | {_ms(m / 1000)} | {_ms(p / 1000)} | {_ms(n / 1000)} | "
            f"{_ratio(p, m)} | {_ratio(n, m)} |"
        )
    wall_ratio = statistics.median(o.median(PGSTAC) / o.median(MATCH) for o in r.outcomes)
    nohydrate_ratio = statistics.median(o.median(NOHYDRATE) / o.median(PGSTAC) for o in r.outcomes)
    differing = [o for o in r.outcomes if not all(o.equal.values())]
    lines += [
        "",
        f"- Same ids on every case: **{'yes' if all_equal else 'NO'}** "
        f"({len(r.outcomes) - len(differing)} of {len(r.outcomes)} cases, both modes)"
        + (
            ""
            if not differing
            else ": differing "
            + "; ".join(
                f"{o.key}: only Noctis {o.only_noctis}, only pgstac {o.only_pgstac}"
                for o in differing
            )
        )
        + ".",
        f"- pgstac's search takes a median {wall_ratio:.1f}x Noctis' match (wall); nohydrate "
        f"a median {nohydrate_ratio:.2f}x the default mode.",
        *_verdicts(r),
    ]
    lines += _semantics(r)
    lines += _explained(r.explained)
    lines.append(end)
    return "\n".join(lines) + "\n"


LINK_BEATS: Final = 1.0
"""Target: Noctis' whole link step faster than pgstac's best id-only search (nohydrate)."""
MATCH_BEATS: Final = 20.0
"""Target: Noctis' match at least this many times faster than pgstac's nohydrate search."""


def _verdicts(r: Run) -> list[str]:
    """The issue's two targets against pgstac's best (wall time, median of the runs)."""
    link = [o for o in r.outcomes if o.median(LINK) < LINK_BEATS * o.median(NOHYDRATE)]
    match = [o for o in r.outcomes if o.median(NOHYDRATE) >= MATCH_BEATS * o.median(MATCH)]

    def verdict(held: list[Outcome]) -> str:
        n = len(r.outcomes)
        return f"{len(held)} of {n} cases: **{'holds' if len(held) == n else 'does not hold'}**"

    worst_link = max(r.outcomes, key=lambda o: o.median(LINK) / o.median(NOHYDRATE))
    worst_match = min(r.outcomes, key=lambda o: o.median(NOHYDRATE) / o.median(MATCH))
    return [
        f"- Target, Noctis' link step faster than pgstac nohydrate: {verdict(link)} (worst "
        f"{worst_link.key}: link {_ms(worst_link.median(LINK))} ms, nohydrate "
        f"{_ms(worst_link.median(NOHYDRATE))} ms).",
        f"- Target, Noctis' match ≥ {MATCH_BEATS:g}x faster than pgstac nohydrate: "
        f"{verdict(match)} (lowest {worst_match.key}: "
        f"{_ratio(worst_match.median(NOHYDRATE), worst_match.median(MATCH))}).",
    ]


def _semantics(r: Run) -> list[str]:
    inclusive = [o for o in r.outcomes if not o.forms_equal.get("inclusive end", True)]
    bare = [o for o in r.outcomes if not o.forms_equal.get("bare dates", True)]
    return [
        "",
        "What differs between the two rules, and how the comparison handles it:",
        "",
        "- **Window end.** Noctis matches `acquired_at >= start AND acquired_at < end + 1 day` "
        "(half-open); a STAC `datetime` interval is closed, and pgstac's WHERE is "
        "`datetime <= <end> AND end_datetime >= <start>`. Sent with the end at the next "
        "midnight (*inclusive end*) it also matches a scene taken at exactly 00:00:00.000000 "
        "of the day after the window; sent as above (*aligned*: that midnight less 1 µs, "
        "timestamptz's resolution) the two are the same set of instants. This pgstac reads "
        "*bare dates* (`2024-06-01/2024-06-30`) as whole days, the last one included and "
        "the next midnight excluded: also Noctis' window. On the archive's own scenes the "
        f"spellings cannot be told apart ({r.boundary_items:,} items at exactly 00:00 UTC; "
        f"inclusive end differs from Noctis on {len(inclusive)} of {len(r.outcomes)} cases, "
        f"bare dates on {len(bare)}), so four probe scenes were put in both stores after the "
        f"timing, on {PROBED.case.key} at the instant before the window, its first instant, "
        "its last microsecond and the next midnight: "
        + "; ".join(f"{who} matches {', '.join(v) or 'none'}" for who, v in r.probes.items())
        + ".",
        "- **Scenes with a time range.** pgstac also matches items whose `start_datetime`/"
        "`end_datetime` overlap the window; Noctis stores one `acquired_at`. The items here "
        "carry `datetime` only (pgstac sets `end_datetime` = `datetime`), so no difference.",
        "- **Geometry.** Both test `ST_Intersects` on planar EPSG:4326 geometry (touching "
        "counts). The footprints split at the antimeridian are the same MultiPolygons in both, "
        f"and the {ANTIMERIDIAN.case.aoi} case (a {ANTIMERIDIAN_KM:g} km square centred on "
        "180°, 17.5° S, split at ±180° into a MultiPolygon, as RFC 7946 says) returns the "
        "same ids: neither store "
        "splits or wraps anything itself, so an AOI that crosses the antimeridian must come "
        "split, for pgstac as for Noctis.",
        "- **Cloud cover.** `eo:cloud_cover` is not a registered queryable, so pgstac reads it "
        "from each item's JSON as a number, the literal being one: its WHERE has "
        f"`to_float(content->'properties'->'eo:cloud_cover') <= to_float('{CLOUD_MAX}')` (no "
        "index; a filter on the rows the AOI and the window found). An item without it fails "
        "the filter, as a NULL `cloud_cover` does in Noctis; Noctis compares `real` values, "
        "pgstac the same values as float8 (loaded exactly): equal ids on the cloud case.",
        "- **Paging.** `search()` returns one page: without a `limit` it is 10 items "
        f"({r.explained.default_limit_returned} returned on {r.explained.key}), so every "
        "search above sets `limit` to the archive's size and the report checks that no "
        "`next` link came back.",
        "- **nohydrate** returns the stored (dehydrated) item and the collection's base "
        "item; `fields` only drops the geometry. It skips the merge with the base item, not "
        "the JSON: the ids are read from the same features.",
    ]


HEX_LITERAL: Final = re.compile(r"'(?:01|00)[0-9A-F]{60,}'")


def _short(plan: str, width: int = 180) -> str:
    """A plan with the AOI's EWKB literal named, not spelled, and long lines cut."""
    lines = []
    for line in HEX_LITERAL.sub(
        lambda m: f"'<AOI as EWKB, {len(m.group()) // 2} bytes>'", plan
    ).splitlines():
        lines.append(line if len(line) <= width else line[: width - 1] + "…")
    return "\n".join(lines)


def _split_logged(message: str, width: int = 150) -> tuple[str, list[str]]:
    """auto_explain's message: (its query text on one line, its plan's lines)."""
    lines = message.splitlines()[1:]  # after "duration: ... plan:"
    start = next((k for k, line in enumerate(lines) if "(cost=" in line), len(lines))
    query = " ".join(" ".join(lines[:start]).split()).removeprefix("Query Text: ")
    if len(query) > width:
        query = query[: width - 1] + "…"
    return query, lines[start:]


def _explained(e: Explained) -> list[str]:
    whole = e.phases.get("search (the whole call)", 0.0)
    fetched = e.phases.get("search_rows (the rows)", 0.0)
    parsed = e.phases.get("search_query (parse, record)", 0.0)
    rest = max(whole - fetched - parsed, 0.0)
    per_row = f", {rest / e.rows:.2f} ms an item" if e.rows else ""
    lines = [
        "",
        f"Where a pgstac search's time goes ({e.key}, default mode, {e.rows:,} items). "
        "`EXPLAIN (ANALYZE, BUFFERS) SELECT search(...)` sees one function call:",
        "",
        "```",
        _short(e.plan),
        "```",
        "",
        "Its phases, each timed on the server (EXPLAIN ANALYZE, median, ms): "
        + ", ".join(f"{k} {v:,.1f}" for k, v in e.phases.items())
        + f"; the rest, {rest:,.1f} ms{per_row}, is building each item's JSON (`format_item`: "
        "PL/pgSQL, per row, hydrating against the collection's base item) and the page. ",
    ]
    if e.readonly_wall:
        lines[-1] += (
            "Wall time with `pgstac.readonly` off (the default: every search upserts its row in "
            "`pgstac.searches`, so it writes and commits) and on: "
            + "; ".join(
                f"{key} {t['off'] * 1000:,.1f} ms off, {t['on'] * 1000:,.1f} ms on"
                for key, t in e.readonly_wall.items()
            )
            + "."
        )
    lines += [
        "",
        "The WHERE pgstac builds, run as one plain query (`SELECT id FROM items WHERE ... ORDER "
        "BY ...`):",
        "",
        "```",
        _short(e.rows_plan),
        "```",
    ]
    if e.nested:
        lines += [
            "",
            f"The statements it runs that take {NESTED_MIN_MS:g} ms or more (auto_explain with "
            "nested statements, ANALYZE and BUFFERS, which slow it; the first lines of each):",
            "",
            "```",
        ]
        for ms, message in sorted(e.nested, key=lambda x: -x[0])[:6]:
            query, plan = _split_logged(_short(message))
            lines += [f"-- {ms:,.1f} ms: {query}", *plan[:5], ""]
        lines[-1] = "```"
    return lines


def write(section: str, size: int) -> None:
    """Replace the section of this archive size in RESULTS.md, or append it."""
    begin, end = (m.format(size=size_label(size)) for m in MARKERS)
    replace_section(RESULTS, begin, end, section)


def to_json(r: Run) -> dict[str, Any]:
    return dataclasses.asdict(r)


def from_json(data: dict[str, Any]) -> Run:
    """A run written by ``--json``, to render its report again."""
    d = dict(data)
    d["build"] = Build.from_json(d["build"])
    d["load"] = PgstacLoad(**d["load"])
    d["outcomes"] = [Outcome.from_json(o) for o in d["outcomes"]]
    explained = dict(d["explained"])
    explained["nested"] = [(float(ms), str(text)) for ms, text in explained["nested"]]
    d["explained"] = Explained(**explained)
    d["load_average"] = tuple(d["load_average"])
    return Run(**d)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pgstac", description=__doc__)
    parser.add_argument("--size", default="100k", help="synthetic archive items (e.g. 20k, 100k)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-url", help="a PostGIS server to use instead of a private one")
    parser.add_argument("--write", action="store_true", help="replace the section in RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--from-json", type=Path, help="measure nothing: render the report of a --json file"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        result = from_json(json.loads(args.from_json.read_text()))
    else:
        size = parse_size(args.size)
        result = asyncio.run(run(size, runs=args.runs, server_url=args.server_url))
    command = (
        f"uv run python -m benchmarks.pgstac --size {size_label(result.size)} "
        f"--runs {result.runs} --write"
    )
    section = report(result, command=command)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(to_json(result), indent=1, default=str))
    if args.write:
        write(section, result.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
