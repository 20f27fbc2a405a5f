"""An archive of 20 million items, and time partitioning of ``archive_item`` against the table.

::

    uv run python -m benchmarks.partitions                      # 5M and 20M, 5 runs
    uv run python -m benchmarks.partitions --sizes 5M,20M --runs 5 --write

Each size is built by :func:`benchmarks.db.build_archive`: the migration's single table with its
composite GiST index ``(footprint, acquired_at)``. Beside it, in the schema ``part``, the same
rows go into a copy **partitioned by acquisition year** (``PARTITION BY RANGE (acquired_at)``,
one partition per UTC year, as pgstac partitions by collection and time), with the same
composite GiST on every partition.

Noctis' own statements run on both, taking turns: :func:`noctis.db.make_engine`'s engine, whose
connections set ``search_path`` to ``part, public`` for the partitioned variant, so the ORM's
unqualified ``archive_item`` names the copy and nothing else changes. *match* is
``select(ArchiveItem.id).where(*match_conditions(...))`` (custom plan, JIT off: the
repository's session settings); *link* is the link step as ``benchmarks/matching.py`` times it
(the study's lock, ``LookupRepository.link`` with the coverage, COMMIT) from an empty lookup
table. Both variants must return the same ids.

The copy keeps every id, so the lookup rows it links still reference the single table. A real
partitioned ``archive_item`` could not keep the contract whole: PostgreSQL enforces a unique
constraint on a partitioned table only when it includes the partition key, so the primary key
becomes ``(id, acquired_at)`` and ``external_id`` is unique only together with
``acquired_at``; a foreign key can reference a partitioned table only through such a key, so
``archive_lookup_item`` would need ``acquired_at`` too. The copy carries those keys, so their
cost is in its load and its sizes.

**How the archive grows with its size** (``--grow``). ``time`` (the default): every size keeps
the first size's density, items per day, and its span grows back in time (5M: 2019-2025, 20M:
1998-2025), as an archive grows by years of acquisitions; a study then matches about as many
scenes at every size, and what grows is only what the index must skip. ``density``: every size
spans 2019-2025, so a study's matches grow with the archive and the link step writes that many
more rows.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date
from functools import partial
from pathlib import Path
from typing import Any, Final

import asyncpg
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from benchmarks.cases import Case
from benchmarks.db import (
    Build,
    add_study,
    build_archive,
    drop_database,
    parse_size,
    server,
    settings_for,
)
from benchmarks.db import size_label as label
from benchmarks.sections import replace_section
from benchmarks.stats import measure_interleaved
from noctis.db import libpq_dsn, make_engine, make_session_factory
from noctis.devtools.synthetic import ArchiveSpec
from noctis.models import ArchiveItem
from noctis.repositories.archive import CUSTOM_PLAN, match_conditions
from noctis.study import CheckedStudy
from noctis.unit_of_work import UnitOfWork

RESULTS: Final = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- partitions:begin -->", "<!-- partitions:end -->"
CASES: Final = (Case("point", "1 month"), Case("city", "1 year"), Case("country", "5 years"))
VARIANTS: Final = ("table", "by year")
PATHS: Final = {"table": None, "by year": "part, public"}
SCALING_TARGET: Final = 2.0  # city/1 year link at 20M <= 2x that at 5M (issue 14)


def spec_for(size: int, first: int, grow: str) -> ArchiveSpec:
    """The synthetic archive of ``size`` items: 2019-2025, or (``grow == "time"``) the first
    size's items per day over ``size / first`` times as many whole years, ending in 2025."""
    base = ArchiveSpec(size=size)
    if grow == "density" or size <= first:
        return base
    years = round((base.end.year - base.start.year + 1) * size / first)
    return dataclasses.replace(base, start=date(base.end.year - years + 1, 1, 1))


@dataclass
class PartBuild:
    """The partitioned copy: how long each phase took and how large it is."""

    partitions: int = 0
    insert_s: float = 0.0
    keys_s: float = 0.0
    index_s: float = 0.0
    analyze_s: float = 0.0
    table_bytes: int = 0
    gist_bytes: int = 0
    other_index_bytes: int = 0


async def build_partitioned(conn: asyncpg.Connection, log: Callable[[str], None]) -> PartBuild:
    """``part.archive_item``: the rows of ``archive_item``, one partition per UTC year."""
    built = PartBuild()
    lo, hi = await conn.fetchrow("SELECT min(acquired_at), max(acquired_at) FROM archive_item")
    years = range(lo.astimezone(UTC).year, hi.astimezone(UTC).year + 1)
    await conn.execute("DROP SCHEMA IF EXISTS part CASCADE")
    await conn.execute("CREATE SCHEMA part")
    await conn.execute(
        "CREATE TABLE part.archive_item (LIKE public.archive_item INCLUDING DEFAULTS"
        " INCLUDING CONSTRAINTS) PARTITION BY RANGE (acquired_at)"
    )
    for year in years:
        await conn.execute(
            f"CREATE TABLE part.archive_item_y{year} PARTITION OF part.archive_item"
            f" FOR VALUES FROM ('{year}-01-01 00:00+00') TO ('{year + 1}-01-01 00:00+00')"
        )
    built.partitions = len(years)

    async def timed(sql: str) -> float:
        started = time.perf_counter()
        await conn.execute(sql)
        return time.perf_counter() - started

    built.insert_s = await timed("INSERT INTO part.archive_item SELECT * FROM public.archive_item")
    log(f"  partitioned copy: {built.partitions} partitions, INSERT {built.insert_s:.1f} s")
    built.keys_s = await timed(
        "ALTER TABLE part.archive_item ADD PRIMARY KEY (id, acquired_at),"
        " ADD UNIQUE (external_id, acquired_at)"
    )
    built.index_s = await timed(
        "CREATE INDEX part_gist ON part.archive_item USING gist (footprint, acquired_at)"
    )
    built.analyze_s = await timed("ANALYZE part.archive_item")
    await conn.execute("VACUUM part.archive_item")
    log(f"  keys {built.keys_s:.1f} s, GiST {built.index_s:.1f} s, ANALYZE {built.analyze_s:.1f} s")
    row = await conn.fetchrow(
        """
        SELECT (SELECT sum(pg_relation_size(inhrelid)) FROM pg_inherits
                 WHERE inhparent = 'part.archive_item'::regclass) AS heap,
               (SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('part.part_gist'))
                 AS gist,
               (SELECT sum(pg_indexes_size(inhrelid)) FROM pg_inherits
                 WHERE inhparent = 'part.archive_item'::regclass) AS indexes
        """
    )
    built.table_bytes, built.gist_bytes = int(row["heap"]), int(row["gist"])
    built.other_index_bytes = int(row["indexes"]) - built.gist_bytes
    return built


@dataclass
class Measured:
    """One case at one size: its matches, and each variant's seconds per run."""

    size: int
    case: Case
    matches: int
    partitions_scanned: int
    match_s: dict[str, list[float]]
    link_s: dict[str, list[float]]


@dataclass
class Sized:
    size: int
    spec: ArchiveSpec
    build: Build
    part: PartBuild
    measured: list[Measured] = field(default_factory=list)


def _engine(url: Any, search_path: str | None) -> AsyncEngine:
    engine = make_engine(settings_for(url))
    if search_path is not None:

        @event.listens_for(engine.sync_engine, "connect")
        def _path(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"SET search_path TO {search_path}")
            cursor.close()

    return engine


async def _partitions_scanned(url: Any, statement: str, params: tuple[Any, ...]) -> int:
    """How many yearly partitions the planner keeps for the statement (a custom plan)."""
    conn = await asyncpg.connect(
        libpq_dsn(url),
        server_settings={"search_path": "part, public", "plan_cache_mode": "force_custom_plan"},
    )
    try:
        plan = "\n".join(str(r[0]) for r in await conn.fetch("EXPLAIN " + statement, *params))
    finally:
        await conn.close()
    return len(set(re.findall(r"on archive_item_y(\d{4})", plan)))


async def _match_ids(factory: async_sessionmaker[AsyncSession], checked: CheckedStudy) -> list[int]:
    stmt = select(ArchiveItem.id).where(*match_conditions(checked.criteria))
    async with factory() as session:
        await session.execute(CUSTOM_PLAN)
        return sorted((await session.scalars(stmt)).all())


async def _link(factory: async_sessionmaker[AsyncSession], checked: CheckedStudy) -> int:
    async with UnitOfWork(factory) as uow:
        await uow.lookups.lock(finder_id=checked.finder_id, dream_id=checked.dream_id)
        result = await uow.lookups.link(
            criteria=checked.criteria, dream_id=checked.dream_id, locked=True
        )
        await uow.commit()
    return result.total


async def measure(url: Any, size: int, runs: int, log: Callable[[str], None]) -> list[Measured]:
    engines = {v: _engine(url, PATHS[v]) for v in VARIANTS}
    factories = {v: make_session_factory(e) for v, e in engines.items()}
    captured: list[tuple[str, tuple[Any, ...]]] = []

    @event.listens_for(engines["by year"].sync_engine, "before_cursor_execute")
    def _capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT ARCHIVE_ITEM.ID"):
            captured.append((statement, tuple(params or ())))

    admin = await asyncpg.connect(libpq_dsn(url))

    async def truncate() -> None:
        await admin.execute("TRUNCATE archive_lookup_item CASCADE")

    out: list[Measured] = []
    try:
        for case in CASES:
            checked = await add_study(admin, factories["table"], case, f"partitions {case.key}")
            timed = await measure_interleaved(
                [(partial(_match_ids, factories[v], checked), None) for v in VARIANTS]
                + [(partial(_link, factories[v], checked), truncate) for v in VARIANTS],
                runs=runs,
                warmups=1,
            )
            ids = {v: {tuple(r) for _, r in timed[i]} for i, v in enumerate(VARIANTS)}
            if len(ids["table"]) != 1 or ids["table"] != ids["by year"]:
                raise AssertionError(f"{case.key}: the partitioned copy matched other ids")
            matched = len(next(iter(ids["table"])))
            totals = {total for _, total in timed[2] + timed[3]}
            if totals != {matched}:
                raise AssertionError(f"{case.key}: link totals {totals} != {matched}")
            scanned = await _partitions_scanned(url, *captured[-1])
            m = Measured(
                size,
                case,
                matched,
                scanned,
                {v: [s for s, _ in timed[i]] for i, v in enumerate(VARIANTS)},
                {v: [s for s, _ in timed[2 + i]] for i, v in enumerate(VARIANTS)},
            )
            out.append(m)
            log(f"  {case.key}: {m.matches:,} matches, {scanned} partitions; " + ", ".join(
                f"{v} match {_ms(m.match_s[v])} link {_ms(m.link_s[v])}" for v in VARIANTS
            ))  # fmt: skip
    finally:
        await admin.close()
        for engine in engines.values():
            await engine.dispose()
    return out


def _ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:,.1f} ms"


def _ratio(a: list[float], b: list[float]) -> float:
    """The median of the per-round ratios a/b (the variants took turns round by round)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


async def run(
    sizes: list[int],
    runs: int,
    grow: str,
    server_url: str | None,
    log: Callable[[str], None] = print,
) -> list[Sized]:
    """Build each size (dropped afterwards), copy it partitioned, measure every case."""
    out = []
    with server(server_url, durable=True) as where:
        for size in sizes:
            spec = spec_for(size, sizes[0], grow)
            log(f"{label(size)}: {spec.start}..{spec.end}")
            build, url = await build_archive(where.admin_url, size, log=log, spec=spec)
            try:
                conn = await asyncpg.connect(libpq_dsn(url))
                try:
                    part = await build_partitioned(conn, log)
                finally:
                    await conn.close()
                sized = Sized(size, spec, build, part)
                sized.measured = await measure(url, size, runs, log)
                out.append(sized)
            finally:
                await drop_database(where.admin_url, build.database)
    return out


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def report(command: str, runs: int, grow: str, sized: list[Sized], loads: str) -> str:
    lines = [
        BEGIN,
        "## 20 million items, and time partitioning (`benchmarks/partitions.py`)",
        "",
        f"`{command}`, {time.strftime('%Y-%m-%d')}, 2 cores, load average {loads}. "
        f"Archives grown by {grow} (see the module's docstring). Median of {runs} runs after a "
        "warm-up, the variants taking turns; ratios are medians of the per-round ratios. "
        "*table*: the migration's `archive_item`; *by year*: the same rows partitioned by "
        "acquisition year (composite GiST on every partition, keys `(id, acquired_at)` and "
        "`(external_id, acquired_at)`). Every case returned the same ids from both.",
        "",
        "| Items | Span | Load (COPY + GiST + ANALYZE) | Heap | GiST | Other indexes "
        "| By year: partitions, INSERT, keys, GiST | By year: heap, GiST, other |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in sized:
        b, p = s.build, s.part
        lines.append(
            f"| {s.size:,} | {s.spec.start.year}-{s.spec.end.year} | {b.load_s:.0f} s "
            f"(COPY {b.copy_s:.0f} s, GiST {b.index_s:.0f} s, ANALYZE {b.analyze_s:.1f} s) "
            f"| {_mib(b.table_bytes)} | {_mib(b.gist_bytes)} | {_mib(b.other_index_bytes)} "
            f"| {p.partitions}, {p.insert_s:.0f} s, {p.keys_s:.0f} s, {p.index_s:.0f} s "
            f"| {_mib(p.table_bytes)}, {_mib(p.gist_bytes)}, {_mib(p.other_index_bytes)} |"
        )
    lines += [
        "",
        "| Items | Case | Matches | Partitions scanned | match: table | match: by year "
        "| by year / table | link: table | link: by year | by year / table |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sized:
        for m in s.measured:
            lines.append(
                f"| {label(s.size)} | {m.case.key} | {m.matches:,} | {m.partitions_scanned} "
                f"| {_ms(m.match_s['table'])} | {_ms(m.match_s['by year'])} "
                f"| {_ratio(m.match_s['by year'], m.match_s['table']):.2f}x "
                f"| {_ms(m.link_s['table'])} | {_ms(m.link_s['by year'])} "
                f"| {_ratio(m.link_s['by year'], m.link_s['table']):.2f}x |"
            )
    lines += ["", *_scaling(sized), END]
    return "\n".join(lines) + "\n"


def _scaling(sized: list[Sized]) -> list[str]:
    """Each case's link time at every size against the first size, per variant."""
    if len(sized) < 2:
        return []
    first = sized[0]
    lines = [
        f"Link time against {label(first.size)} (medians; target: city/1 year at 20M "
        f"<= {SCALING_TARGET:g}x that at 5M):",
        "",
        "| Case | Items | Matches (x) | table | by year |",
        "|---|---|---:|---:|---:|",
    ]
    for later in sized[1:]:
        for a, b in zip(first.measured, later.measured, strict=True):
            cells = [
                f"{statistics.median(b.link_s[v]) / statistics.median(a.link_s[v]):.2f}x"
                for v in VARIANTS
            ]
            grown = f" ({b.matches / a.matches:.2f}x)" if a.matches else ""
            lines.append(
                f"| {a.case.key} | {label(later.size)} | {b.matches:,}{grown} | "
                + " | ".join(cells)
                + " |"
            )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.partitions", description=__doc__)
    parser.add_argument("--sizes", default="5M,20M")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--grow", choices=("time", "density"), default="time")
    parser.add_argument("--server-url")
    parser.add_argument("--write", action="store_true", help="replace its section of RESULTS.md")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    sized = asyncio.run(run(sizes, args.runs, args.grow, args.server_url))
    loads = f"{start} at the start, " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    command = (
        f"uv run python -m benchmarks.partitions --sizes {args.sizes} --runs {args.runs}"
        f" --grow {args.grow}"
    )
    section = report(command, args.runs, args.grow, sized, loads + " at the end")
    print(section)
    if args.write:
        replace_section(RESULTS, BEGIN, END, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
