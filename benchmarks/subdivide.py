"""Coverage of large AOIs: Noctis' ``ST_Covers`` shortcuts against ``ST_Subdivide`` pieces.

::

    uv run python -m benchmarks.subdivide                 # 1M items, 5 runs
    uv run python -m benchmarks.subdivide --size 300k --write

The standard PostGIS answer to overlays with a large polygon is to cut it into small pieces
(``ST_Subdivide``), intersect and measure each piece, and sum. Noctis measures one match's
coverage as :func:`noctis.repositories.geo.clipped_share`'s usual branch does: the whole AOI
when the footprint covers it, the footprint when the AOI covers it (both ``ST_Covers`` on the
constant AOI, which PostGIS prepares once per statement), else the area of the overlay with
the whole AOI. The subdivided variants keep those two shortcuts and replace only the last
branch by the sum over the pieces the footprint touches (a footprint covering a piece takes
the piece's area).

Every case sums the coverage of all its matches (the same rows, one statement each, taking
turns run by run); the report gives median times, the ratio to Noctis' form, and how far each
sum is from Noctis' (pieces cut the AOI's edges at new vertices, and the geography areas read
an edge as a great circle: the sums differ slightly).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import asyncpg

from benchmarks.cases import WINDOWS, Case, aoi_ewkb
from benchmarks.db import build_archive, drop_database, parse_size, server, size_label
from benchmarks.stats import measure_interleaved
from noctis.db import libpq_dsn

RESULTS: Final = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- subdivide:begin -->", "<!-- subdivide:end -->"
CASES: Final = (
    Case("city", "1 year"),
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
    f"WHEN ST_Covers({AOI}, a.footprint) THEN ST_Area(a.footprint::geography) "
)
NOCTIS: Final = (
    f"SELECT sum(CASE {SHORTCUTS}"
    f"ELSE ST_Area(ST_Intersection(a.footprint, {AOI})::geography) END), count(*) {MATCHES}"
)


def subdivided(vertices: int) -> str:
    return (
        f"WITH pieces AS MATERIALIZED (SELECT p FROM ST_Subdivide({AOI}, {vertices}) p) "
        f"SELECT sum(CASE {SHORTCUTS}ELSE (SELECT sum(CASE "
        "WHEN ST_Covers(a.footprint, p) THEN ST_Area(p::geography) "
        "ELSE ST_Area(ST_Intersection(a.footprint, p)::geography) END) "
        f"FROM pieces WHERE ST_Intersects(p, a.footprint)) END), count(*) {MATCHES}"
    )


VARIANTS: Final = {
    "Noctis (shortcuts, whole AOI)": NOCTIS,
    **{f"subdivided, {n} vertices": subdivided(n) for n in PIECE_VERTICES},
}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


Measured = list[tuple[Case, int, dict[str, list[float]], dict[str, float]]]
"""Per case: its matches, each variant's seconds per run and its sum of coverage."""


async def _case(
    conn: asyncpg.Connection, case: Case, runs: int
) -> tuple[int, dict[str, list[float]], dict[str, float]]:
    ewkb = aoi_ewkb(case.aoi)
    area = await conn.fetchval(f"SELECT ST_Area({AOI}::geography)", ewkb)
    start, end = WINDOWS[case.window]
    args = (ewkb, _midnight(start), _midnight(end), area)
    sums: dict[str, float] = {}
    rows: list[int] = []

    def entry(name: str, sql: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            row = await conn.fetchrow(sql, *args)
            assert row is not None
            sums[name] = float(row[0] or 0.0)
            rows.append(int(row[1]))

        return run

    timed = await measure_interleaved(
        [(entry(n, q), None) for n, q in VARIANTS.items()], runs=runs, warmups=1
    )
    assert len(set(rows)) == 1, rows  # every variant sums the same matches
    return rows[0], {n: [s for s, _ in t] for n, t in zip(VARIANTS, timed, strict=True)}, sums


async def measure(url: str, runs: int, log: Callable[[str], None]) -> Measured:
    conn = await asyncpg.connect(url)
    out = []
    try:
        await conn.execute("SET jit = off")
        for case in CASES:
            rows, seconds, sums = await _case(conn, case, runs)
            out.append((case, rows, seconds, sums))
            log(f"{case.key}: {rows:,} matches, " + ", ".join(
                f"{n} {statistics.median(s) * 1000:.0f} ms" for n, s in seconds.items()
            ))  # fmt: skip
    finally:
        await conn.close()
    return out


def report(size: int, runs: int, measured: Measured) -> str:
    base = next(iter(VARIANTS))
    head = "| Case | Matches | " + " | ".join(VARIANTS) + " | largest difference of the sum |"
    lines = [
        BEGIN,
        "## Coverage of large AOIs: ST_Covers shortcuts vs ST_Subdivide"
        " (`benchmarks/subdivide.py`)",
        "",
        f"`uv run python -m benchmarks.subdivide --size {size_label(size)} --runs {runs} --write`,"
        f" {time.strftime('%Y-%m-%d')}, {size_label(size)} synthetic items, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end. Median ms of"
        f" {runs} runs taking turns (ratio to Noctis' form); each statement sums the coverage"
        " of every match of the case.",
        "",
        head,
        "|---|---:|" + "---:|" * len(VARIANTS) + "---:|",
    ]
    for case, rows, seconds, sums in measured:
        cells = []
        for name, s in seconds.items():
            ratio = statistics.median(x / y for x, y in zip(s, seconds[base], strict=True))
            shown = "" if name == base else f" ({ratio:.2f}x)"
            cells.append(f"{statistics.median(s) * 1000:,.0f}{shown}")
        diff = max(abs(v - sums[base]) / sums[base] for v in sums.values()) if sums[base] else 0.0
        lines.append(f"| {case.key} | {rows:,} | " + " | ".join(cells) + f" | {diff:.1e} |")
    lines += ["", END]
    return "\n".join(lines) + "\n"


def write(section: str) -> None:
    text = RESULTS.read_text()
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)


async def run(
    size: int, runs: int, server_url: str | None, log: Callable[[str], None] = print
) -> Measured:
    """Build the archive (dropped afterwards) and measure every case."""
    with server(server_url, durable=True) as where:
        build, url = await build_archive(where.admin_url, size, log=log)
        try:
            return await measure(libpq_dsn(url), runs, log)
        finally:
            await drop_database(where.admin_url, build.database)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.subdivide", description=__doc__)
    parser.add_argument("--size", default="1M")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-url")
    parser.add_argument("--write", action="store_true", help="replace its section of RESULTS.md")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    size = parse_size(args.size)
    section = report(size, args.runs, asyncio.run(run(size, args.runs, args.server_url)))
    print(section)
    if args.write:
        write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
