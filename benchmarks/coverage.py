"""Coverage at scale, two questions, each answered by variants taking turns on the same matches.

::

    uv run python -m benchmarks.coverage                 # 1M items, 5 runs
    uv run python -m benchmarks.coverage --size 300k --write

1. **A match's coverage of a large AOI: ``ST_Covers`` shortcuts or ``ST_Subdivide``?** The
   standard PostGIS answer to overlays with a large polygon is to cut it into small pieces
   (``ST_Subdivide``), intersect and measure each piece, and sum. Noctis measures one match's
   coverage as :func:`noctis.repositories.geo.clipped_share`'s usual branch does: the whole
   AOI when the footprint covers it, the footprint when the AOI covers it (both ``ST_Covers``
   on the constant AOI, which PostGIS prepares once per statement), else the area of the
   overlay with the whole AOI. The subdivided variants keep those two shortcuts and replace
   only the last branch by the sum over the pieces the footprint touches. Each statement sums
   the coverage of every match.
2. **The union coverage (the flow's summary): every footprint, each distinct one once, or a
   sieve first?** ``area(ST_Intersection(ST_Union(footprints), AOI))`` over every match, as
   Noctis computed it until 2026-11-30, and over the distinct footprints (a revisit of a fixed
   tile repeats its footprint; the union of a set does not change when a member repeats),
   deduplicated by their EWKB (a hash of bytes) or by the geometry itself (``DISTINCT``); the
   whole AOI when one footprint covers it (an ``EXISTS`` read through the archive's GiST
   index: footprints whose box holds the AOI's), else the ``DISTINCT`` union (Noctis from
   278e429); and the sieve behind the same shortcut: one round (the 64 largest distinct
   footprints unioned first, those their union covers left out of the union of the rest;
   Noctis from fecc699 to 2026-12-01), and the rounds of :data:`noctis.repositories.union.SIEVE`
   (then the 448 largest of those left join the union, and what it covers is left out again;
   Noctis now). The shortcut's variants do not
   count the matches when it settles the answer (the report checks that the others read the
   same ones).

The report gives median times, the ratio to the first variant, and how far each result is
from it (pieces add vertices on the AOI's edges, which the densified areas read slightly
differently, and a union's floating point depends on its order: they differ slightly).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

import asyncpg

from benchmarks.cases import WINDOWS, Case, aoi_ewkb
from benchmarks.db import archive, size_label
from benchmarks.sections import section_main
from benchmarks.sql import equal_area
from benchmarks.stats import measure_interleaved
from noctis.db import libpq_dsn
from noctis.repositories.union import SIEVE

BEGIN, END = "<!-- coverage:begin -->", "<!-- coverage:end -->"
CASES: Final = (
    Case("city", "1 year"),
    Case("city", "5 years"),
    Case("region", "5 years"),
    Case("country", "1 year"),
    Case("country", "5 years"),
)
PIECE_VERTICES: Final = (32, 128, 256)

AOI: Final = "ST_GeomFromEWKB($1::bytea)"
MATCHES: Final = (
    f"FROM archive_item a WHERE ST_Intersects(a.footprint, {AOI})"
    " AND a.acquired_at >= $2 AND a.acquired_at < $3"
)
SHORTCUTS: Final = (
    f"WHEN ST_Covers(a.footprint, {AOI}) THEN $4::float8 "
    f"WHEN ST_Covers({AOI}, a.footprint) THEN {equal_area('a.footprint')} "
)
NOCTIS: Final = (
    f"SELECT sum(CASE {SHORTCUTS}"
    f"ELSE {equal_area(f'ST_Intersection(a.footprint, {AOI})')} END), count(*) {MATCHES}"
)


def subdivided(vertices: int) -> str:
    return (
        f"WITH pieces AS MATERIALIZED (SELECT p FROM ST_Subdivide({AOI}, {vertices}) p) "
        f"SELECT sum(CASE {SHORTCUTS}ELSE (SELECT sum(CASE "
        f"WHEN ST_Covers(a.footprint, p) THEN {equal_area('p')} "
        f"ELSE {equal_area('ST_Intersection(a.footprint, p)')} END) "
        f"FROM pieces WHERE ST_Intersects(p, a.footprint)) END), count(*) {MATCHES}"
    )


CLEAN: Final = (
    "CASE WHEN ST_IsValid({g}) THEN {g} ELSE ST_CollectionExtract(ST_MakeValid({g}), 3) END"
)
UNION_AREA: Final = equal_area("ST_Intersection(ST_Union({g}), " + AOI + ")")


DISTINCT_UNION: Final = (
    "SELECT "
    + UNION_AREA.format(g=CLEAN.format(g="d.g"))
    + ", sum(d.n) FROM (SELECT a.footprint AS g, count(*) AS n "
    + MATCHES
    + " GROUP BY 1) d"
)


# The sieve (noctis.repositories.union): in rounds, the largest distinct footprints still left
# join the union, and every footprint the union covers is left out of the rest.
def sieved_union(rounds: tuple[int, ...]) -> str:
    ctes = [
        "d AS MATERIALIZED (SELECT " + CLEAN.format(g="a.footprint") + " AS g, count(*) AS n "
        + MATCHES + " GROUP BY a.footprint)"
    ]  # fmt: skip
    left, union = "d", ""
    for k, size in enumerate(rounds, start=1):
        head = f"(SELECT g FROM {left} ORDER BY ST_Area(g) DESC NULLS LAST LIMIT {size})"
        if union:
            head = f"(SELECT u AS g FROM {union} UNION ALL {head})"
        ctes.append(f"s{k} AS (SELECT ST_Union(h.g) AS u FROM {head} h)")
        ctes.append(
            f"r{k} AS MATERIALIZED (SELECT {left}.g FROM {left}, s{k}"
            f" WHERE NOT ST_Covers(s{k}.u, {left}.g))"
        )
        left, union = f"r{k}", f"s{k}"
    return (
        "WITH " + ", ".join(ctes) + " SELECT " + UNION_AREA.format(g="m.g")
        + f", (SELECT sum(n) FROM d) FROM (SELECT u AS g FROM {union}"
        f" UNION ALL SELECT g FROM {left}) m"
    )  # fmt: skip


ONE_ROUND: Final = (64,)
"""The sieve of Noctis from fecc699 to 2026-12-01: one round of the 64 largest."""


def one_covers(union: str) -> str:
    """The whole AOI (no count: NULL) when one match covers it, else ``union`` (and its count);
    the union's subquery runs only when the first arm is empty."""
    return (
        f"WITH c AS MATERIALIZED (SELECT EXISTS (SELECT 1 {MATCHES} AND a.footprint ~ {AOI}"
        f" AND ST_IsValid(a.footprint) AND ST_Covers(a.footprint, {AOI})) AS covers)"
        " SELECT $4::float8, NULL::bigint FROM c WHERE c.covers"
        f" UNION ALL SELECT u.area, u.n FROM c, LATERAL ({union}) u(area, n)"
        " WHERE NOT c.covers"
    )


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    variants: dict[str, str]
    """name -> a statement returning (value, matches); the first is the reference."""


FAMILIES: Final = (
    Family(
        "per-match",
        "a match's coverage of the AOI, summed over the matches",
        {
            "Noctis (shortcuts, whole AOI)": NOCTIS,
            **{f"subdivided, {n} vertices": subdivided(n) for n in PIECE_VERTICES},
        },
    ),
    Family(
        "union",
        "the union coverage (area of the union of the footprints, clipped to the AOI)",
        {
            "every footprint": "SELECT "
            + UNION_AREA.format(g=CLEAN.format(g="a.footprint"))
            + f", count(*) {MATCHES}",
            "distinct by EWKB": "SELECT "
            + UNION_AREA.format(g=CLEAN.format(g="ST_GeomFromEWKB(d.w)"))
            + ", sum(d.n) FROM (SELECT ST_AsEWKB(a.footprint) AS w, count(*) AS n "
            + MATCHES
            + " GROUP BY 1) d",
            "DISTINCT geometry": DISTINCT_UNION,
            "one covers, else DISTINCT": one_covers(DISTINCT_UNION),
            "one covers, else sieve of 64 (one round)": one_covers(sieved_union(ONE_ROUND)),
            "one covers, else sieve of " + ", ".join(map(str, SIEVE)) + " (Noctis)": one_covers(
                sieved_union(SIEVE)
            ),
        },
    ),
)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass
class Measured:
    """One case of one family: its matches, each variant's seconds per run and its value."""

    family: str
    case: Case
    matches: int
    seconds: dict[str, list[float]]
    values: dict[str, float]


async def _case(conn: asyncpg.Connection, family: Family, case: Case, runs: int) -> Measured:
    ewkb = aoi_ewkb(case.aoi)
    area = await conn.fetchval(f"SELECT {equal_area(AOI)}", ewkb)
    start, end = WINDOWS[case.window]
    args = (ewkb, _midnight(start), _midnight(end), area)
    values: dict[str, float] = {}
    matches: list[int] = []

    def entry(name: str, sql: str) -> Callable[[], Awaitable[None]]:
        used = args if "$4" in sql else args[:3]

        async def run() -> None:
            row = await conn.fetchrow(sql, *used)
            assert row is not None
            values[name] = float(row[0] or 0.0)
            if row[1] is not None or not sql.startswith("WITH c AS"):  # a shortcut: no count
                matches.append(int(row[1] or 0))

        return run

    timed = await measure_interleaved(
        [(entry(n, q), None) for n, q in family.variants.items()], runs=runs, warmups=1
    )
    assert len(set(matches)) == 1, matches  # every variant reads the same matches
    seconds = {n: [s for s, _ in t] for n, t in zip(family.variants, timed, strict=True)}
    return Measured(family.key, case, matches[0], seconds, values)


async def measure(url: str, runs: int, log: Callable[[str], None]) -> list[Measured]:
    conn = await asyncpg.connect(url)
    out = []
    try:
        await conn.execute("SET jit = off")
        for family in FAMILIES:
            for case in CASES:
                m = await _case(conn, family, case, runs)
                out.append(m)
                log(f"{family.key} {case.key}: {m.matches:,} matches, " + ", ".join(
                    f"{n} {statistics.median(s) * 1000:.0f} ms" for n, s in m.seconds.items()
                ))  # fmt: skip
    finally:
        await conn.close()
    return out


def _table(family: Family, measured: list[Measured]) -> list[str]:
    base = next(iter(family.variants))
    lines = [
        f"**{family.title[0].upper()}{family.title[1:]}**: median ms (ratio to {base}).",
        "",
        "| Case | Matches | " + " | ".join(family.variants) + " | largest difference |",
        "|---|---:|" + "---:|" * len(family.variants) + "---:|",
    ]
    for m in (m for m in measured if m.family == family.key):
        cells = []
        for name, s in m.seconds.items():
            ratio = statistics.median(x / y for x, y in zip(s, m.seconds[base], strict=True))
            shown = "" if name == base else f" ({ratio:.2f}x)"
            cells.append(f"{statistics.median(s) * 1000:,.0f}{shown}")
        ref = m.values[base]
        diff = max(abs(v - ref) / ref for v in m.values.values()) if ref else 0.0
        lines.append(f"| {m.case.key} | {m.matches:,} | " + " | ".join(cells) + f" | {diff:.1e} |")
    return [*lines, ""]


def report(size: int, runs: int, measured: list[Measured]) -> str:
    lines = [
        BEGIN,
        "## Coverage at scale: ST_Subdivide, and the union of distinct footprints"
        " (`benchmarks/coverage.py`)",
        "",
        f"`uv run python -m benchmarks.coverage --size {size_label(size)} --runs {runs} --write`,"
        f" {time.strftime('%Y-%m-%d')}, {size_label(size)} synthetic items, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end. Median of {runs} runs, the"
        " variants of a case taking turns; the difference is relative to the first variant.",
        "",
    ]
    for family in FAMILIES:
        lines += _table(family, measured)
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
        argv, prog="benchmarks.coverage", doc=__doc__, size="1M", runs=5,
        measure=run, render=report, markers=(BEGIN, END),
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
