"""Noctis' and pgstac's connections, and each case measured on both."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from typing import Any

import asyncpg
import shapely
from sqlalchemy import event, select
from sqlalchemy.engine import URL

from benchmarks.cases import PLACE
from benchmarks.matching import Bench, Caps, Study
from benchmarks.pgstac.outcomes import Explained, Outcome
from benchmarks.pgstac.queries import (
    DATETIME_FORMS,
    LINK,
    MATCH,
    NESTED_MIN_MS,
    NOHYDRATE,
    ONE_MICROSECOND,
    PGSTAC,
    PROBED,
    READONLY_SMALL,
    SEARCHES,
    Query,
    _stamp,
    searches_run,
    stac_search,
)
from benchmarks.stats import measure_interleaved
from noctis.db import libpq_dsn
from noctis.devtools.synthetic import SENTINEL_COLLECTION
from noctis.models import ArchiveItem
from noctis.repositories.archive import CUSTOM_PLAN, match_conditions
from noctis.study import check_study
from noctis.unit_of_work import UnitOfWork


class Side:
    """Noctis' and pgstac's connections, and the approaches ready to be timed.

    ``searches``: the pgstac modes run (of :data:`SEARCHES`, in its order; nohydrate among
    them). Without the default mode nothing runs it: not the id comparison, the timing, the
    server times, the probes; :meth:`explain` takes nohydrate apart instead."""

    def __init__(
        self,
        noctis_url: URL,
        pgstac_url: URL,
        *,
        runs: int,
        size: int,
        searches: tuple[str, ...] = tuple(SEARCHES),
    ) -> None:
        self.bench = Bench(noctis_url, runs=runs, warmups=1, caps=Caps())
        self.pgstac_url = pgstac_url
        self.runs = runs
        self.limit = max(size, 1)
        self.searches = searches_run(searches)
        self.approaches = (MATCH, LINK, *self.searches)
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
            mode: json.dumps(stac_search(query, limit=self.limit, nohydrate=SEARCHES[mode]))
            for mode in self.searches
        }
        for mode in self.searches:
            ids, _ = await self.search_ids(
                stac_search(query, limit=self.limit, nohydrate=SEARCHES[mode])
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
            *((searcher(mode), None) for mode in self.searches),
        ]
        results = await measure_interleaved(entries, runs=self.runs, warmups=1)
        for name, timed in zip(self.approaches, results, strict=True):
            outcome.wall[name] = [s for s, _ in timed]
        outcome.link_rows = int(results[1][-1][1])
        await self.bench.truncate()

        # The server's own time: the same statements under EXPLAIN (ANALYZE, TIMING OFF).
        raw = self.bench.raw  # force_custom_plan and JIT off, as the repository sets them
        server: dict[str, list[float]] = {MATCH: [], **{mode: [] for mode in self.searches}}
        for _ in range(self.runs):
            server[MATCH].append(await self.explain_ms(raw, statement, *params))
            for mode in self.searches:
                server[mode].append(
                    await self.explain_ms(
                        self.conns[mode], "SELECT search($1::jsonb)", bodies[mode]
                    )
                )
        outcome.server = server
        log(
            f"  {query.key}: {outcome.rows:,} rows; "
            + ", ".join(f"{a} {outcome.median(a) * 1000:.1f} ms" for a in self.approaches)
            + "; ids equal: "
            + ", ".join(f"{m} {outcome.equal[m]}" for m in self.searches)
        )
        return outcome

    async def probe_window_end(self) -> dict[str, list[str]]:
        """Scenes at the window's edges, put in both stores (after the timing): which of them
        Noctis' rule and each spelling of pgstac's window match (in the default mode, or
        nohydrate when it is not run: the same WHERE)."""
        nohydrate = PGSTAC not in self.searches
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
            ids, _ = await self.search_ids(
                stac_search(q, limit=self.limit + 10, nohydrate=nohydrate, form=form)
            )
            matched[f"pgstac, {form}"] = sorted(set(ids) & probes.keys())
        return {k: [p.removeprefix("probe ") for p in v] for k, v in matched.items()}

    async def explain(self, query: Query) -> Explained:
        """One search taken apart: its plan, its phases, the plans of what it runs.

        The default mode's, on the default connection; without the default mode, nohydrate's,
        on the connection it is timed on (``pgstac.readonly`` on: search_query records nothing).
        """
        mode = PGSTAC if PGSTAC in self.searches else NOHYDRATE
        pg = self.conns[mode]
        nohydrate = SEARCHES[mode]
        body = stac_search(query, limit=self.limit, nohydrate=nohydrate)
        text = json.dumps(body)
        out = Explained(key=query.key, search=body, mode=mode)
        rows = await pg.fetch("EXPLAIN (ANALYZE, BUFFERS) SELECT search($1::jsonb)", text)
        out.plan = "\n".join(str(r[0]) for r in rows)

        # The phases, each timed on the server (median of the runs): search_query (parse the
        # body into a WHERE and an ORDER BY, record the search), search_rows (chunker, then one
        # query per chunk), and the whole call (the rows, then format_item on each).
        where, orderby = await pg.fetchrow(
            "SELECT _where, orderby FROM search_query($1::jsonb)", text
        )
        parse = "search_query (parse)" if nohydrate else "search_query (parse, record)"
        phases: dict[str, tuple[str, tuple[Any, ...]]] = {
            parse: ("SELECT search_query($1::jsonb)", (text,)),
            "search_rows (the rows)": (
                "SELECT count(*) FROM search_rows($1, $2, NULL, $3)",
                (where, orderby, self.limit + 1),
            ),
            "search (the whole call)": ("SELECT search($1::jsonb)", (text,)),
        }
        for name, (statement, args) in phases.items():
            times = [await self.explain_ms(pg, statement, *args) for _ in range(self.runs)]
            out.phases[name] = statistics.median(times)
        out.rows = int(
            await pg.fetchval(
                phases["search_rows (the rows)"][0], *phases["search_rows (the rows)"][1]
            )
        )

        # What the write to pgstac.searches costs (readonly = false): the wall time of the
        # search, taking turns with the same search under pgstac.readonly = on; on this case and
        # on a small one, where the write is a larger share. In the mode taken apart.
        for q in (query, READONLY_SMALL):
            out.readonly_wall[q.key] = await self.readonly_wall(
                json.dumps(stac_search(q, limit=self.limit, nohydrate=nohydrate))
            )

        plain = await pg.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM items WHERE {where} ORDER BY {orderby}"
        )
        out.rows_plan = "\n".join(str(r[0]) for r in plain)

        # The statements search() runs, with auto_explain's plans (LOG messages to the client).
        messages: list[str] = []

        def listener(_: Any, message: Any) -> None:
            messages.append(str(getattr(message, "message", message)))

        pg.add_log_listener(listener)
        try:
            await pg.execute("LOAD 'auto_explain'")
            for setting, value in (
                ("auto_explain.log_min_duration", f"{NESTED_MIN_MS}ms"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_buffers", "on"),
                ("auto_explain.log_timing", "on"),
                ("auto_explain.log_nested_statements", "on"),
                ("client_min_messages", "log"),
            ):
                await pg.execute(f"SET {setting} = '{value}'")
            await pg.fetchval("SELECT search($1::jsonb)::text", text)
        finally:
            await pg.execute("RESET client_min_messages")
            await pg.execute("SET auto_explain.log_min_duration = -1")
            pg.remove_log_listener(listener)
        for message in messages:
            ms = _duration_ms(message)
            if ms is not None:
                out.nested.append((ms, message))

        unlimited = {k: v for k, v in body.items() if k != "limit"}
        result = json.loads(
            str(await pg.fetchval("SELECT search($1::jsonb)::text", json.dumps(unlimited)))
        )
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
