"""What the link's foreign-key checks cost, taking turns with two arms without them.

    uv run python -m benchmarks.fk_checks --size 1M [--cases city/1 year,...] [--runs 7] [--write]

``archive_lookup_item`` has three FOREIGN KEYs (to ``dream``, ``imagery_finder`` and
``archive_item``). PostgreSQL checks a FOREIGN KEY once per inserted row: an SPI query per row
and key that locks the referenced row FOR KEY SHARE, even when every row of the statement names
the same dream and finder. The arms, each on the link's statement (``benchmarks.sql.floor``
with coverage: the one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` that
``LookupRepository.link`` sends), from an empty lookup table:

- **fk**: the schema as shipped;
- **statement**: the three constraints dropped, and the same checks made once per statement by
  an AFTER INSERT trigger over the inserted rows (a transition table): the referenced rows locked
  FOR KEY SHARE as the FOREIGN KEY locks them, a missing one a ``foreign_key_violation``. What
  it does not do (the deletes' cascade, REPEATABLE READ's cross-check): the report says;
- **scene fk**: the FOREIGN KEY to ``archive_item`` kept, the two to ``dream`` and
  ``imagery_finder`` (the same row for every row of a link) checked by that trigger;
- **none**: the constraints dropped, nothing in their place (the lower bound).

Each run is a transaction that is rolled back: the arm's DDL untimed, then the statement timed.
The arms take turns, the first one rotating. WAL: the bytes the statement writes just after a
CHECKPOINT, once per arm and case (the first change to a page after a checkpoint writes the
whole page: the row locks of the FOREIGN KEY on ``archive_item`` dirty archive pages).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any, Final

import asyncpg

from benchmarks import sql
from benchmarks.cases import Case, aoi_ewkb
from benchmarks.db import (
    add_study,
    build_archive,
    drop_database,
    parse_size,
    server,
    settings_for,
)
from benchmarks.db import size_label as label
from benchmarks.sections import replace_section
from noctis.db import libpq_dsn, make_engine, make_session_factory

ARMS: Final = ("fk", "scene fk", "statement", "none")
DEFAULT_CASES: Final = ("point/5 years", "city/1 year", "city/5 years", "country/1 year")
CONSTRAINTS: Final = (
    "fk_archive_lookup_item_dream_id_dream",
    "fk_archive_lookup_item_imagery_finder_id_imagery_finder",
    "fk_archive_lookup_item_archive_item_id_archive_item",
)
REFERENCES: Final = (("dream", "dream_id"), ("imagery_finder", "imagery_finder_id"),
                     ("archive_item", "archive_item_id"))  # fmt: skip


def _check(table: str, column: str) -> str:
    return f"""
  SELECT count(DISTINCT {column}) INTO wanted FROM new_rows;
  SELECT count(*) INTO locked FROM (
    SELECT 1 FROM {table} p WHERE p.id IN (SELECT {column} FROM new_rows) FOR KEY SHARE OF p) s;
  IF locked < wanted THEN
    RAISE EXCEPTION 'archive_lookup_item references a missing {table}'
      USING ERRCODE = 'foreign_key_violation';
  END IF;"""


def _function(name: str, references: tuple[tuple[str, str], ...]) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE wanted bigint; locked bigint;
BEGIN{"".join(_check(t, c) for t, c in references)}
  RETURN NULL;
END $$"""


FUNCTIONS: Final = {
    "statement": _function("bench_lookup_references", REFERENCES),
    "scene fk": _function("bench_lookup_parents", REFERENCES[:2]),
}


def _trigger(function: str) -> str:
    return (
        f"CREATE TRIGGER {function} AFTER INSERT ON archive_lookup_item "
        f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    )


WHAT_IT_MEANS: Final = (
    "- **Where the time goes.** For each inserted row and key PostgreSQL runs "
    "`SELECT 1 FROM ONLY <parent> x WHERE id = $1 FOR KEY SHARE OF x` through SPI. Two of the "
    "three keys name the same row for every row of a link (its dream, its finder), and still "
    "cost as much as the scene's.",
    "- **WAL.** Locking a scene FOR KEY SHARE writes its tuple header: after a checkpoint each "
    "matched scene's page is logged whole (8 kB), so a link writes about 8 kB of WAL per match "
    "on top of its own rows, whether the lock comes from the FOREIGN KEY or from the trigger. "
    "Only *none* avoids it. The same locks make concurrent links of studies that match the same "
    "scenes share them through MultiXacts.",
    "- **Not adopted.** The FOREIGN KEYs are part of the schema Augur reads: reflection "
    "(Django's `inspectdb`, SQLAlchemy's automap), ER tools and `pg_constraint` would no longer "
    "show them. Triggers would have to replace ON DELETE CASCADE, `TRUNCATE … CASCADE` (which "
    "would no longer reach the lookups) and key updates. Under REPEATABLE READ, a cascading "
    "delete that runs beside a link can miss the link's new rows, where PostgreSQL's own check "
    "raises a serialization failure. The gain for the dream and the finder alone (*scene fk*) "
    "is the schema owners' call; this benchmark re-measures it.",
)
MARK_BEGIN: Final = "<!-- fk-checks:begin -->"
MARK_END: Final = "<!-- fk-checks:end -->"


@dataclass
class Study:
    case: Case
    args: tuple[Any, ...]


async def _studies(url: Any, cases: list[Case]) -> list[Study]:
    conn = await asyncpg.connect(libpq_dsn(url))
    engine = make_engine(settings_for(url))
    out = []
    try:
        for case in cases:
            checked = await add_study(conn, make_session_factory(engine), case, f"fk {case.key}")
            dream, finder = checked.dream_id, checked.finder_id
            start = datetime.combine(case.start, dtime(0), tzinfo=UTC)
            end = datetime.combine(case.end + timedelta(days=1), dtime(0), tzinfo=UTC)
            area = checked.criteria.area_m2
            coverage = (area,) if area else ()
            out.append(Study(case, (dream, finder, aoi_ewkb(case.aoi), start, end, *coverage)))
        for function in FUNCTIONS.values():
            await conn.execute(function)
    finally:
        await engine.dispose()
        await conn.close()
    return out


async def _arm(conn: asyncpg.Connection, arm: str) -> None:
    if arm == "fk":
        return
    for name in CONSTRAINTS[:2] if arm == "scene fk" else CONSTRAINTS:
        await conn.execute(f"ALTER TABLE archive_lookup_item DROP CONSTRAINT {name}")
    if arm == "statement":
        await conn.execute(_trigger("bench_lookup_references"))
    if arm == "scene fk":
        await conn.execute(_trigger("bench_lookup_parents"))


async def _run(
    conn: asyncpg.Connection, study: Study, arm: str, *, wal: bool
) -> tuple[float, int, int]:
    """(seconds, rows inserted, WAL bytes or -1): one rolled-back run of the link's statement."""
    statement = sql.floor(coverage=len(study.args) == 6)
    if wal:
        await conn.execute("CHECKPOINT")
    transaction = conn.transaction()
    await transaction.start()
    try:
        await _arm(conn, arm)
        before = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        started = time.perf_counter()
        new, _existing = await conn.fetchrow(statement, *study.args)
        took = time.perf_counter() - started
        written = await conn.fetchval("SELECT pg_current_wal_insert_lsn() - $1::pg_lsn", before)
    finally:
        await transaction.rollback()
    return took, int(new), int(written) if wal else -1


async def _refuses_missing_references(conn: asyncpg.Connection, study: Study) -> bool:
    """Each arm with checks raises foreign_key_violation for a missing dream, finder or scene."""
    good = (study.args[0], study.args[1], 1)
    for arm in ("fk", "scene fk", "statement"):
        for position in range(3):
            row = tuple(-1 if i == position else v for i, v in enumerate(good))
            transaction = conn.transaction()
            await transaction.start()
            try:
                await _arm(conn, arm)
                await conn.execute(
                    "INSERT INTO archive_lookup_item (dream_id, imagery_finder_id, archive_item_id)"
                    " VALUES ($1, $2, $3)", *row,
                )  # fmt: skip
                return False
            except asyncpg.ForeignKeyViolationError:
                pass
            finally:
                await transaction.rollback()
    return True


async def _measure(url: Any, cases: list[Case], runs: int) -> dict[str, Any]:
    studies = await _studies(url, cases)
    conn = await asyncpg.connect(
        libpq_dsn(url), server_settings={"plan_cache_mode": "force_custom_plan", "jit": "off"}
    )
    results: dict[str, Any] = {}
    try:
        refuses = await _refuses_missing_references(conn, studies[0])
        for study in studies:
            seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
            rows: dict[str, set[int]] = {arm: set() for arm in ARMS}
            wal = {arm: (await _run(conn, study, arm, wal=True))[2] for arm in ARMS}
            for r in range(runs + 1):  # the first round warms up, untimed
                order = ARMS[r % len(ARMS) :] + ARMS[: r % len(ARMS)]
                for arm in order:
                    took, new, _ = await _run(conn, study, arm, wal=False)
                    rows[arm].add(new)
                    if r:
                        seconds[arm].append(took)
            med = {arm: statistics.median(seconds[arm]) for arm in ARMS}
            results[study.case.key] = {
                "rows": sorted(rows["fk"]),
                "same_rows": len({tuple(sorted(v)) for v in rows.values()}) == 1,
                "seconds": {arm: [round(s, 5) for s in seconds[arm]] for arm in ARMS},
                "median_ms": {arm: round(med[arm] * 1000, 2) for arm in ARMS},
                "fk_share": round((med["fk"] - med["none"]) / med["fk"], 3),
                "over_fk": {arm: round(med[arm] / med["fk"], 3) for arm in ARMS},
                "wal_bytes": wal,
            }
            print(f"[fk] {study.case.key}: {results[study.case.key]['median_ms']}", file=sys.stderr)
    finally:
        await conn.close()
    return {"refuses_missing_references": refuses, "cases": results}


def render(summary: dict[str, Any]) -> str:
    size = label(summary["size"])
    lines = [
        MARK_BEGIN,
        f"## The link's foreign-key checks, {size} items (`benchmarks/fk_checks.py`)",
        "",
        f"`{summary['command']}`, {summary['when']}, {summary['server']}, load average "
        f"{summary['load'][0]:.1f} at the start. Median of {summary['runs']} runs after a "
        "warm-up, the arms taking turns; each run is the link's statement "
        "(`benchmarks.sql.floor`, with coverage) in a transaction rolled back afterwards, from "
        "an empty lookup table. *fk*: the schema as shipped (three FOREIGN KEYs, checked by "
        "PostgreSQL once per inserted row and key); *scene fk*: the FOREIGN KEY to "
        "`archive_item` kept, those to `dream` and `imagery_finder` checked once per statement "
        "by a trigger over the inserted rows; *statement*: all three checked by that trigger "
        "(the referenced rows locked FOR KEY SHARE as a FOREIGN KEY locks them, a missing one "
        "a `foreign_key_violation`: "
        + (
            "checked for each arm and key"
            if summary["refuses_missing_references"]
            else "NOT RAISED"
        )
        + "); *none*: no checks (the lower bound). WAL: what the statement writes right after a "
        "CHECKPOINT (the first change to a page after a checkpoint logs the whole page).",
        "",
        "| Case | Rows | fk | scene fk | statement | none | FK checks' share | scene fk / fk "
        "| statement / fk | WAL fk | WAL scene fk | WAL statement | WAL none |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, c in summary["cases"].items():
        m, w, r = c["median_ms"], c["wal_bytes"], c["over_fk"]
        rows = ", ".join(f"{r:,}" for r in c["rows"]) + ("" if c["same_rows"] else " (ARMS DIFFER)")
        lines.append(
            f"| {key} | {rows} | "
            + " | ".join(f"{m[a]:,.1f} ms" for a in ARMS)
            + f" | {c['fk_share']:.0%} | {r['scene fk']:.2f}x | {r['statement']:.2f}x | "
            + " | ".join(f"{w[a] / 2**20:,.2f} MiB" for a in ARMS)
            + " |"
        )
    lines += ["", *WHAT_IT_MEANS, "", MARK_END, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fk_checks")
    parser.add_argument("--size", type=parse_size, default=1_000_000)
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--server-url", help="an admin URL of a PostGIS to use (default: private)")
    parser.add_argument("--json", type=Path, help="also write the summary to this file")
    parser.add_argument("--write", action="store_true", help="put the table in RESULTS.md")
    args = parser.parse_args(argv)
    cases = [Case.parse(key.strip()) for key in args.cases.split(",")]
    load = list(map(float, Path("/proc/loadavg").read_text().split()[:3]))
    with server(args.server_url, durable=True) as srv:
        build, url = asyncio.run(build_archive(srv.admin_url, args.size, log=print))
        try:
            summary = asyncio.run(_measure(url, cases, args.runs))
        finally:
            asyncio.run(drop_database(srv.admin_url, build.database))
    summary |= {
        "size": args.size, "runs": args.runs, "server": srv.origin, "load": load,
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"uv run python -m benchmarks.fk_checks --size {label(args.size)} "
                   f"--cases '{args.cases}' --runs {args.runs}",
    }  # fmt: skip
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if args.write:
        results = Path(__file__).parent / "RESULTS.md"
        replace_section(results, MARK_BEGIN, MARK_END, render(summary))
    ok = summary["refuses_missing_references"] and all(
        c["same_rows"] for c in summary["cases"].values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
