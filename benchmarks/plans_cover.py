"""Coverage plans on the synthetic archive: the plan against the plans users write by hand and
against its lower bound, its time, one plan per month, and the same greedy in SQL.

::

    uv run python -m benchmarks.plans_cover                  # 5M items -> a section of RESULTS.md
    uv run python -m benchmarks.plans_cover --size 1M --no-write
    uv run python -m benchmarks.plans_cover --server-url postgresql://postgres@host/postgres

A private PostGIS cluster (fsync off: nothing here measures writes), or the given server, gets
a migrated database with the synthetic archive (benchmarks/db.py builds it, then it is dropped).
Each polygon case of benchmarks/cases.py, and a 250 km region over the archive's seven years
(the issue's 40,000-scene study), is linked by the flow's use case, then planned by the product
(:func:`noctis.plans.plan_study`: read, plan, store; best of ``--runs``) with the defaults
(target 0.99, min gain 0.0001, cloud weight 0.5, recency weight 0.1). The baselines
(benchmarks/cover_baselines.py) take the same scenes, pieces, target and minimum.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import asyncpg
import numpy as np
import shapely
from sqlalchemy.engine import URL

from benchmarks import cases as C
from benchmarks.cover_baselines import Taken, cloud_first, coverage_first, sql_greedy, take_in_order
from benchmarks.db import archive, parse_size, settings_for, size_label
from benchmarks.sections import replace_section
from noctis.cover import Per, Pieces, PlanOptions
from noctis.db import libpq_dsn, make_engine, make_session_factory
from noctis.plans import StudyPlan, plan_study
from noctis.study import CheckedStudy, check_study, link_study
from noctis.unit_of_work import UnitOfWork

RESULTS = Path(__file__).with_name("RESULTS.md")
MARKERS = "<!-- plans-cover-{size}:begin -->", "<!-- plans-cover-{size}:end -->"
"""Each archive size has its own section of RESULTS.md."""
WINDOWS = {**C.WINDOWS, "7 years": (date(2019, 1, 1), date(2025, 12, 31))}
SPEED = "region/7 years"
"""The speed target's study: the issue's 40,000 scenes (at 5M items)."""
CASES = (*(c.key for c in C.ALL_CASES if c.polygonal), SPEED)
MONTHLY = ("region/5 years", "country/5 years")
SQL_CASES = ("city/1 year", "region/1 year", "country/1 year", "region/5 years")


@dataclass
class Outcome:
    key: str
    matches: int
    candidates: int
    distinct: int
    plan: int
    lower_bound: int
    share: float
    reached: bool
    seconds: float
    compute: float
    cloud: float
    baselines: dict[str, Taken] = field(default_factory=dict)
    baseline_cloud: dict[str, float] = field(default_factory=dict)
    monthly: tuple[int, int, int, float] | None = None
    """(slices, slices reaching the target, scenes, seconds)."""
    sql: Taken | None = None


async def _study(conn: asyncpg.Connection, key: str) -> tuple[int, int]:
    aoi, _, window = key.partition("/")
    start, end = WINDOWS[window]
    dream = await conn.fetchval("INSERT INTO dream (name) VALUES ($1) RETURNING id", key)
    finder = await conn.fetchval(
        "INSERT INTO imagery_finder (name, location, start_date, end_date) "
        "VALUES ($1, ST_GeomFromEWKB($2), $3, $4) RETURNING id",
        key,
        C.aoi_ewkb(aoi),
        start,
        end,
    )
    return int(finder), int(dream)


async def _baselines(
    conn: asyncpg.Connection, study: CheckedStudy, planned: StudyPlan
) -> tuple[dict[str, Taken], dict[str, float]]:
    rows = await conn.fetch(
        "SELECT l.coverage, a.cloud_cover::float8, date_part('epoch', a.acquired_at), "
        "ST_AsBinary(a.footprint) FROM archive_lookup_item l JOIN archive_item a "
        "ON a.id = l.archive_item_id WHERE l.dream_id = $1 AND l.imagery_finder_id = $2 "
        "AND l.coverage > 0 ORDER BY l.id",
        study.dream_id,
        study.finder_id,
    )
    coverage = np.array([r[0] for r in rows], dtype=float)
    cloud = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=float)
    acquired = np.array([r[2] for r in rows], dtype=float)
    pieces = Pieces.of(
        [bytes(r[3]) for r in rows], shapely.from_wkb(bytes(study.criteria.location.data))
    )
    plan = planned.plan
    goal = {"target_m2": 0.99 * plan.union_m2, "min_gain_m2": 1e-4 * plan.union_m2}
    taken = {
        "cloud first": take_in_order(pieces, cloud_first(cloud, acquired).tolist(), **goal),
        "coverage first": take_in_order(
            pieces, coverage_first(coverage, cloud, acquired).tolist(), **goal
        ),
    }
    clouds = {k: _mean_cloud(cloud[t.scenes]) for k, t in taken.items()}
    return taken, clouds


def _mean_cloud(values: np.ndarray) -> float:
    known = values[~np.isnan(values)]
    return float(known.mean()) if len(known) else float("nan")


async def measure(url: URL, key: str, *, runs: int, log: Callable[[str], None]) -> Outcome:
    conn = await asyncpg.connect(libpq_dsn(url))
    engine = make_engine(settings_for(url))
    factory = make_session_factory(engine)
    try:
        finder, dream = await _study(conn, key)
        async with UnitOfWork(factory) as uow:
            study = await check_study(uow, finder_id=finder, dream_id=dream)
            linked = await link_study(uow, study)
        times, planned = [], None
        for _ in range(runs):
            started = time.perf_counter()
            async with UnitOfWork(factory) as uow:
                planned = await plan_study(uow, study)
            times.append((time.perf_counter() - started, planned.plan.seconds))
        assert planned is not None
        (part,) = planned.plan.slices
        cloud = [planned.item(s.index).cloud_cover for s in part.scenes]
        outcome = Outcome(
            key=key,
            matches=linked.total,
            candidates=len(planned.candidates),
            distinct=len(set(planned.candidates.footprints)),
            plan=len(part.scenes),
            lower_bound=part.lower_bound,
            share=planned.plan.share(part.covered_m2) or 0.0,
            reached=part.reached,
            seconds=min(t for t, _ in times),
            compute=min(c for _, c in times),
            cloud=_mean_cloud(np.array([np.nan if c is None else c for c in cloud], dtype=float)),
        )
        outcome.baselines, outcome.baseline_cloud = await _baselines(conn, study, planned)
        if key in MONTHLY:
            started = time.perf_counter()
            async with UnitOfWork(factory) as uow:
                month = await plan_study(uow, study, PlanOptions(per=Per.parse("month")))
            slices = month.plan.slices
            outcome.monthly = (
                len(slices),
                sum(s.reached for s in slices),
                sum(len(s.scenes) for s in slices),
                time.perf_counter() - started,
            )
        if key in SQL_CASES:
            first, last = WINDOWS[key.partition("/")[2]]
            window = (
                datetime.combine(first, dtime(0), tzinfo=UTC),
                datetime.combine(last, dtime(0), tzinfo=UTC) + timedelta(days=1),
            )
            outcome.sql = await sql_greedy(
                conn,
                finder_id=finder,
                dream_id=dream,
                window=window,
                aoi_ewkb=C.aoi_ewkb(key.partition("/")[0]),
                target=0.99,
                min_gain=1e-4,
            )
        log(
            f"{key}: {outcome.candidates:,} scenes, plan {outcome.plan} (bound "
            f"{outcome.lower_bound}) in {outcome.seconds:.2f} s; "
            + ", ".join(f"{k} {len(t.scenes)}" for k, t in outcome.baselines.items())
            + (
                f"; SQL {len(outcome.sql.scenes)} in {outcome.sql.seconds:.2f} s"
                if outcome.sql
                else ""
            )
        )
        return outcome
    finally:
        await conn.close()
        await engine.dispose()


async def run(
    size: int,
    *,
    cases: tuple[str, ...] = CASES,
    runs: int = 3,
    server_url: str | None = None,
    log: Callable[[str], None] = print,
) -> list[Outcome]:
    async with archive(size, server_url, log=log, durable=False) as url:
        return [await measure(url, key, runs=runs, log=log) for key in cases]


def report(
    outcomes: list[Outcome], size: int, runs: int, load: float, end_load: float | None = None
) -> str:
    begin, end = (m.format(size=size_label(size)) for m in MARKERS)
    lines = [
        begin,
        f"## Coverage plans, {size_label(size)} items (`benchmarks/plans_cover.py`)",
        "",
        f"`uv run python -m benchmarks.plans_cover --size {size_label(size)}`, "
        f"{time.strftime('%Y-%m-%d')}, "
        f"{size_label(size)} synthetic items, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load:.1f} at the start"
        + ("" if end_load is None else f", {end_load:.1f} at the end")
        + ". The plan: "
        "`noctis.plans.plan_study` with the defaults (target 99% of what all the study's scenes "
        f"cover, min gain 0.01% of it, cloud weight 0.5, recency weight 0.1), best of {runs}; "
        "*time* is the whole call (read the scenes, plan, store, commit), *compute* the "
        "planning alone. The baselines take the same scenes, in their order, skipping a scene "
        "that adds no more than the minimum, until the target is covered.",
        "",
        "| Case | Scenes (distinct footprints) | Plan | Lower bound | Cloud first | Coverage "
        "first | Plan reaches | Mean cloud %: plan / coverage first | Time (compute) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        cloud_first_, coverage_first_ = o.baselines["cloud first"], o.baselines["coverage first"]
        lines.append(
            f"| {o.key} | {o.candidates:,} ({o.distinct:,}) | **{o.plan}** | {o.lower_bound} | "
            f"{len(cloud_first_.scenes)} | {len(coverage_first_.scenes)} | {o.share:.2%}"
            f"{'' if o.reached else ' (short)'} | {o.cloud:.1f} / "
            f"{o.baseline_cloud['coverage first']:.1f} | {o.seconds:.2f} s ({o.compute:.2f} s) |"
        )
    never = [o for o in outcomes if all(o.plan <= len(t.scenes) for t in o.baselines.values())]
    reached = [o for o in outcomes if o.reached]
    speed = next((o for o in outcomes if o.key == SPEED), None)
    ratio = statistics.median(
        len(o.baselines["cloud first"].scenes) / max(o.plan, 1) for o in outcomes
    )
    lines += [
        "",
        f"- The plan is never larger than either baseline: {len(never)} of {len(outcomes)} "
        f"cases ({'holds' if len(never) == len(outcomes) else 'MISSED'}); the cloud-first "
        f"baseline takes a median {ratio:.1f}x the plan's scenes.",
        f"- Every plan reaches its target: {len(reached)} of {len(outcomes)} "
        f"({'holds' if len(reached) == len(outcomes) else 'MISSED'}).",
    ]
    if speed is not None:
        verdict = "holds" if speed.seconds <= 5.0 else "MISSED"
        lines.append(
            f"- A plan of a {speed.candidates:,}-scene study ({speed.key}: a 250 km region "
            f"over the archive's seven years) in at most 5 s: {speed.seconds:.2f} s "
            f"({verdict})."
        )
    monthly = [o for o in outcomes if o.monthly]
    if monthly:
        lines += ["", "One plan per month (`--per month`):", ""]
        for o in monthly:
            assert o.monthly is not None
            slices, ok, scenes, seconds = o.monthly
            lines.append(
                f"- {o.key}: {slices} months, {ok} reach the target, {scenes:,} scenes in all "
                f"({scenes / max(slices, 1):.1f} a month), {seconds:.2f} s"
            )
    sql = [o for o in outcomes if o.sql]
    if sql:
        lines += [
            "",
            "The same greedy in SQL (temporary tables, eager: each step updates the remainders "
            "its piece meets; `benchmarks/cover_baselines.py`), against the product's Python "
            "(shapely 2, lazy; the whole call):",
            "",
            "| Case | Scenes | SQL: plan, time | Python: plan, time |",
            "|---|---:|---:|---:|",
        ]
        for o in sql:
            assert o.sql is not None
            lines.append(
                f"| {o.key} | {o.candidates:,} | {len(o.sql.scenes)}, {o.sql.seconds:.2f} s | "
                f"{o.plan}, {o.seconds:.2f} s |"
            )
    lines.append(end)
    return "\n".join(lines) + "\n"


def write(section: str, size: int) -> None:
    """Replace the section of this archive size in RESULTS.md, or append it."""
    begin, end = (m.format(size=size_label(size)) for m in MARKERS)
    replace_section(RESULTS, begin, end, section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plans_cover", description=__doc__)
    parser.add_argument("--size", default="5M", help="synthetic archive items (e.g. 1M, 5M)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case keys")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server-url", help="a PostGIS server to use instead of a private one")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    size, load = parse_size(args.size), os.getloadavg()[0]
    cases = tuple(k.strip() for k in args.cases.split(","))
    outcomes = asyncio.run(run(size, cases=cases, runs=args.runs, server_url=args.server_url))
    section = report(outcomes, size, args.runs, load, os.getloadavg()[0])
    print(section)
    if not args.no_write:
        write(section, size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
