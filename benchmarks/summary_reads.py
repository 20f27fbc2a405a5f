"""The flow's suspect count: every linked footprint asked, or only the rows with no coverage?

::

    uv run python -m benchmarks.summary_reads                  # 1M items, 7 runs
    uv run python -m benchmarks.summary_reads --size 1M --write

After linking, the flow counts the study's items whose footprint has a non-finite coordinate
(:meth:`noctis.repositories.LookupRepository.suspect_count`): such a footprint matches but never
gets a coverage. Until 2026-12-01 the count joined every lookup row of the study to its scene
and asked each footprint (``ST_IsValid``, then the reason of the invalid ones); now only the
rows whose coverage is NULL are joined and asked, since a suspect footprint never gets one.

The archive is the synthetic one, with a few non-finite footprints added inside every case's
AOI and window (an ``Infinity`` and a ``NaN`` vertex), so the counts are not all zero. Each
case is linked by Noctis' own link step; then both forms count, taking turns, through the same
session factory. The counts must be equal, and equal to the non-finite items the case matched.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchmarks.cases import WINDOWS, Case, aoi
from benchmarks.db import (
    add_study,
    archive,
    settings_for,
    size_label,
)
from benchmarks.sections import section_main
from benchmarks.stats import measure_interleaved
from noctis.db import libpq_dsn, make_engine, make_session_factory
from noctis.models import ArchiveItem, ArchiveLookupItem
from noctis.repositories.geo import suspect
from noctis.repositories.keys import of_study
from noctis.unit_of_work import UnitOfWork

BEGIN, END = "<!-- summary-reads:begin -->", "<!-- summary-reads:end -->"
CASES: Final = (
    Case("point", "5 years"),
    Case("city", "1 year"),
    Case("region", "5 years"),
    Case("country", "1 year"),
    Case("country", "5 years"),
)
NON_FINITE: Final = ("Infinity", "NaN")
BEFORE, NOCTIS = "every row asked (before)", "rows with no coverage (Noctis)"

_BAD_ITEM: Final = (
    "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) SELECT $1, "
    "'sentinel-2-l2a', ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY[ST_MakePoint(x, y), "
    "ST_MakePoint(x + 0.2, y), ST_MakePoint($2::float8, y + 0.2), ST_MakePoint(x, y + 0.2), "
    "ST_MakePoint(x, y)])), 4326), $3 FROM (SELECT $4::float8 AS x, $5::float8 AS y) p"
)


async def add_non_finite_items(conn: asyncpg.Connection) -> None:
    """Two items with a non-finite vertex (one of each) at every case's AOI, in its window."""
    for case in CASES:
        point = aoi(case.aoi).representative_point()
        start, _ = WINDOWS[case.window]
        when = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=3)
        for x in NON_FINITE:
            name = f"non-finite-{x}-{case.key}".replace(" ", "-").replace("/", "-")
            await conn.execute(_BAD_ITEM, name, float(x), when, point.x - 0.1, point.y - 0.1)


async def count_before(session: AsyncSession, *, finder_id: int, dream_id: int) -> int:
    """The suspect count as Noctis read it until 2026-12-01: every row's footprint asked."""
    stmt = (
        select(func.count())
        .select_from(ArchiveLookupItem)
        .join(ArchiveItem, ArchiveItem.id == ArchiveLookupItem.archive_item_id)
        .where(
            *of_study(ArchiveLookupItem, finder_id=finder_id, dream_id=dream_id),
            suspect(ArchiveItem.footprint),
        )
    )
    return int((await session.execute(stmt)).scalar_one())


@dataclass
class Measured:
    case: Case
    rows: int
    suspects: int
    seconds: dict[str, list[float]]


async def _case(
    admin: asyncpg.Connection,
    factory: async_sessionmaker[AsyncSession],
    case: Case,
    runs: int,
) -> Measured:
    study = await add_study(admin, factory, case, f"summary {case.key}")
    ids = {"finder_id": study.finder_id, "dream_id": study.dream_id}
    async with UnitOfWork(factory) as uow:
        linked = await uow.lookups.link(criteria=study.criteria, dream_id=study.dream_id)
        await uow.commit()
    counts: dict[str, list[int]] = {BEFORE: [], NOCTIS: []}

    def entry(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            async with UnitOfWork(factory) as uow:
                if name == BEFORE:
                    counts[name].append(await count_before(uow.session, **ids))
                else:
                    counts[name].append(await uow.lookups.suspect_count(**ids))

        return run

    timed = await measure_interleaved(
        [(entry(BEFORE), None), (entry(NOCTIS), None)], runs=runs, warmups=1
    )
    expected = await admin.fetchval(
        "SELECT count(*) FROM archive_lookup_item l JOIN archive_item a"
        " ON a.id = l.archive_item_id WHERE l.imagery_finder_id = $1 AND l.dream_id = $2"
        " AND a.external_id LIKE 'non-finite-%'",
        study.finder_id, study.dream_id,
    )  # fmt: skip
    assert set(counts[BEFORE]) == set(counts[NOCTIS]) == {expected}, (case, counts, expected)
    seconds = {n: [s for s, _ in t] for n, t in zip((BEFORE, NOCTIS), timed, strict=True)}
    return Measured(case, linked.total, int(expected), seconds)


async def measure(url: URL, runs: int, log: Callable[[str], None]) -> list[Measured]:
    admin = await asyncpg.connect(libpq_dsn(url))
    engine = make_engine(settings_for(url))
    out = []
    try:
        factory = make_session_factory(engine)
        for case in CASES:
            m = await _case(admin, factory, case, runs)
            out.append(m)
            log(f"{case.key}: {m.rows:,} rows, {m.suspects} suspect, " + ", ".join(
                f"{n} {statistics.median(s) * 1000:.1f} ms" for n, s in m.seconds.items()
            ))  # fmt: skip
    finally:
        await engine.dispose()
        await admin.close()
    return out


def report(size: int, runs: int, measured: list[Measured]) -> str:
    lines = [
        BEGIN,
        "## The flow's suspect count (`benchmarks/summary_reads.py`)",
        "",
        f"`uv run python -m benchmarks.summary_reads --size {size_label(size)} --runs {runs}"
        f" --write`, {time.strftime('%Y-%m-%d')}, {size_label(size)} synthetic items plus two"
        " non-finite footprints per case, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end. Median of {runs} runs, the"
        " two forms taking turns through the same session factory; the counts are equal on"
        " every run and equal to the non-finite items the case matched.",
        "",
        f"| Case | Lookup rows | Suspect | {BEFORE} | {NOCTIS} | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in measured:
        before, now = m.seconds[BEFORE], m.seconds[NOCTIS]
        ratio = statistics.median(x / y for x, y in zip(now, before, strict=True))
        lines.append(
            f"| {m.case.key} | {m.rows:,} | {m.suspects} | {statistics.median(before) * 1000:,.1f}"
            f" ms | {statistics.median(now) * 1000:,.1f} ms | {ratio:.2f}x |"
        )
    lines.append(END)
    return "\n".join(lines) + "\n"


async def run(
    size: int, runs: int, server_url: str | None, log: Callable[[str], None] = print
) -> list[Measured]:
    """Build the archive (dropped afterwards), add the non-finite items, measure every case."""
    async with archive(size, server_url, log=log) as url:
        conn = await asyncpg.connect(libpq_dsn(url))
        try:
            await add_non_finite_items(conn)
            await conn.execute("ANALYZE archive_item")
        finally:
            await conn.close()
        return await measure(url, runs, log)


def main(argv: list[str] | None = None) -> int:
    return section_main(
        argv, prog="benchmarks.summary_reads", doc=__doc__, size="1M", runs=7,
        measure=run, render=report, markers=(BEGIN, END),
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
