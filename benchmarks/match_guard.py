"""The match predicate's guard for non-finite footprints: what it costs on an archive without any.

::

    uv run python -m benchmarks.match_guard                 # 1M items, 7 runs
    uv run python -m benchmarks.match_guard --size 5M --write

GEOS raises on a footprint with an Infinity or NaN coordinate, so the match rule
(:func:`noctis.repositories.geo.intersects`) asks it only of footprints whose perimeter is finite
and decides the others by their bounding box: ``footprint && aoi AND CASE WHEN
ST_Perimeter(footprint) < 'Infinity' THEN ST_Intersects(footprint, aoi) ELSE true END``. Until
2026-12-01 the rule was ``ST_Intersects(footprint, aoi)`` alone (its support function adds the
``&&`` the index answers). Both count the matches of every case (and sum their vertices, so each
footprint is read), taking turns on one connection with Noctis' settings (custom plans, JIT
off); the counts must be equal, and the report gives each form's plan (node, index, estimated
rows): the guard halves the planner's row estimate (a CASE gets PostgreSQL's default 0.5).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg

from benchmarks.cases import WINDOWS, Case, aoi_ewkb
from benchmarks.db import archive, size_label
from benchmarks.sections import section_main
from benchmarks.stats import measure_interleaved
from noctis.db import libpq_dsn

BEGIN, END = "<!-- match-guard:begin -->", "<!-- match-guard:end -->"
CASES: Final = (
    Case("point", "1 month"),
    Case("point", "5 years"),
    Case("city", "1 year"),
    Case("city", "5 years"),
    Case("region", "1 year"),
    Case("region", "5 years"),
    Case("country", "1 year"),
    Case("country", "5 years"),
)
AOI: Final = "ST_GeomFromEWKB($1::bytea)"
FORMS: Final = {
    "ST_Intersects (before)": f"ST_Intersects(footprint, {AOI})",
    "guarded (Noctis)": (
        f"footprint && {AOI} AND CASE WHEN ST_Perimeter(footprint) < 'Infinity'::float8"
        f" THEN ST_Intersects(footprint, {AOI}) ELSE true END"
    ),
}
QUERY: Final = (
    "SELECT count(*), sum(ST_NPoints(footprint)) FROM archive_item"
    " WHERE {p} AND acquired_at >= $2 AND acquired_at < $3"
)


@dataclass
class Measured:
    case: Case
    matches: int
    seconds: dict[str, list[float]]
    plans: dict[str, str]


def _nodes(node: dict[str, Any]) -> list[str]:
    index = f" ({node['Index Name']})" if "Index Name" in node else ""
    out = [f"{node['Node Type']}{index} ~{node['Plan Rows']:,}"]
    for child in node.get("Plans", []):
        out += _nodes(child)
    return out


async def _case(conn: asyncpg.Connection, case: Case, runs: int) -> Measured:
    start, end = WINDOWS[case.window]
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    last = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    args = (aoi_ewkb(case.aoi), first, last)
    plans, values = {}, {}
    for name, predicate in FORMS.items():
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + QUERY.format(p=predicate), *args)
        plans[name] = " > ".join(_nodes(json.loads(plan)[0]["Plan"]))

    def entry(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            values[name] = tuple(await conn.fetchrow(QUERY.format(p=FORMS[name]), *args) or ())

        return run

    timed = await measure_interleaved([(entry(n), None) for n in FORMS], runs=runs, warmups=1)
    assert len(set(values.values())) == 1, (case, values)
    seconds = {n: [s for s, _ in t] for n, t in zip(FORMS, timed, strict=True)}
    return Measured(case, int(next(iter(values.values()))[0]), seconds, plans)


async def measure(url: str, runs: int, log: Callable[[str], None]) -> list[Measured]:
    conn = await asyncpg.connect(url)
    out = []
    try:
        await conn.execute("SET plan_cache_mode = force_custom_plan; SET jit = off")
        for case in CASES:
            m = await _case(conn, case, runs)
            out.append(m)
            log(f"{case.key}: {m.matches:,} matches, " + ", ".join(
                f"{n} {statistics.median(s) * 1000:.1f} ms" for n, s in m.seconds.items()
            ))  # fmt: skip
    finally:
        await conn.close()
    return out


def report(size: int, runs: int, measured: list[Measured]) -> str:
    before, now = FORMS
    lines = [
        BEGIN,
        "## The match's guard for non-finite footprints (`benchmarks/match_guard.py`)",
        "",
        f"`uv run python -m benchmarks.match_guard --size {size_label(size)} --runs {runs}"
        f" --write`, {time.strftime('%Y-%m-%d')}, {size_label(size)} synthetic items (none"
        " non-finite: what the guard costs), load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end. Median of {runs} runs, the"
        " two forms taking turns; the counts are equal on every case.",
        "",
        f"| Case | Matches | {before} | {now} | ratio | plan, before | plan, Noctis |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for m in measured:
        a, b = m.seconds[before], m.seconds[now]
        ratio = statistics.median(y / x for x, y in zip(a, b, strict=True))
        lines.append(
            f"| {m.case.key} | {m.matches:,} | {statistics.median(a) * 1000:,.1f} ms"
            f" | {statistics.median(b) * 1000:,.1f} ms | {ratio:.2f}x"
            f" | {m.plans[before]} | {m.plans[now]} |"
        )
    lines.append(END)
    return "\n".join(lines) + "\n"


async def run(
    size: int, runs: int, server_url: str | None, log: Callable[[str], None] = print
) -> list[Measured]:
    """Build the archive (dropped afterwards) and measure every case."""
    async with archive(size, server_url, log=log) as url:
        return await measure(libpq_dsn(url), runs, log)


def main(argv: list[str] | None = None) -> int:
    return section_main(
        argv, prog="benchmarks.match_guard", doc=__doc__, size="1M", runs=7,
        measure=run, render=report, markers=(BEGIN, END),
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
