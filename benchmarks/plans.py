"""Plans: EXPLAIN of Noctis' own statement, the plan-cache strategies and the index choice.

All three run on one archive (the largest of the run) and use the idempotent
rerun of the link statement where they repeat it: the study is linked once, so
every execution computes every match (coverage included) and probes the unique
index, and writes nothing. That keeps the table the same size from one
execution to the next, so only the plan differs.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from benchmarks import sql
from benchmarks.cases import Case
from benchmarks.db import GIST_INDEX
from benchmarks.matching import Bench, Study
from noctis.db import libpq_dsn

EXTRA_INDEXES: dict[str, str] = {
    "ix_bench_archive_item_footprint": (
        "CREATE INDEX ix_bench_archive_item_footprint ON archive_item USING gist (footprint)"
    ),
    "ix_bench_archive_item_acquired_at": (
        "CREATE INDEX ix_bench_archive_item_acquired_at ON archive_item (acquired_at)"
    ),
}
INDEX_VARIANTS: dict[str, list[str]] = {
    # variant -> the indexes it drops (inside a rolled-back transaction)
    "composite GiST (footprint, acquired_at)": list(EXTRA_INDEXES),
    "GiST (footprint) + btree (acquired_at)": [GIST_INDEX],
    "GiST (footprint) alone": [GIST_INDEX, "ix_bench_archive_item_acquired_at"],
}
_INDEX_NODE = re.compile(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan) (?:using|on) (\w+)")


def indexes_used(plan: str) -> list[str]:
    return sorted(set(_INDEX_NODE.findall(plan)))


@dataclass
class Explain:
    case: str
    title: str
    plan: str

    @property
    def indexes(self) -> list[str]:
        return indexes_used(self.plan)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Explain:
        return Explain(**data)


@dataclass
class PlanRun:
    """One strategy on one case: the timed executions after the warm-up ones."""

    case: str
    strategy: str
    warmed_on: str
    seconds: list[float]
    rows: int
    generic_plans: int | None = None
    custom_plans: int | None = None
    plan: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @staticmethod
    def from_json(data: dict[str, Any]) -> PlanRun:
        return PlanRun(**data)


@dataclass
class IndexRun:
    case: str
    variant: str
    mode: str  # fresh | rerun
    seconds: list[float]
    rows: int
    indexes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @staticmethod
    def from_json(data: dict[str, Any]) -> IndexRun:
        return IndexRun(**data)


# --------------------------------------------------------------------------- EXPLAIN


async def explain_link(bench: Bench, study: Study) -> Explain:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement Noctis sends, as it sends it.

    The statement and its parameters are captured from SQLAlchemy on a real
    ``link`` call, then replayed under EXPLAIN on a fresh table, in a
    transaction that is rolled back, with ``plan_cache_mode = force_custom_plan``
    as Noctis sets it.
    """
    await bench.truncate()
    bench.captured.clear()
    bench.capture = True
    try:
        await bench.link(study.checked)
    finally:
        bench.capture = False
    statement, params = bench.captured[-1]
    await bench.truncate()
    conn = bench.raw
    tr = conn.transaction()
    await tr.start()
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, VERBOSE OFF) " + statement, *params)
    finally:
        await tr.rollback()
    return Explain(study.case.key, "Noctis' link statement (captured), fresh", _plan(rows))


def _plan(rows: list[asyncpg.Record]) -> str:
    return "\n".join(str(r[0]) for r in rows)


# --------------------------------------------------------------------------- plan strategies


def _literal_args(study: Study) -> str:
    """The floor's parameters as SQL literals (for EXPLAIN EXECUTE)."""
    parts = [
        str(study.dream_id),
        str(study.finder_id),
        "'\\x" + study.ewkb.hex() + "'::bytea",
        f"'{study.start.isoformat()}'::timestamptz",
        f"'{study.end.isoformat()}'::timestamptz",
    ]
    return ", ".join(parts)


async def _prepared_plan(conn: asyncpg.Connection, query: str, study: Study, mode: str) -> str:
    """The plan a prepared statement (no coverage) gets under ``plan_cache_mode = mode``."""
    types = "bigint, bigint, bytea, timestamptz, timestamptz"
    await conn.execute(f"PREPARE bench_plan ({types}) AS {query}")
    try:
        await conn.execute(f"SET plan_cache_mode = {mode}")
        rows = await conn.fetch(f"EXPLAIN EXECUTE bench_plan({_literal_args(study)})")
    finally:
        await conn.execute("RESET plan_cache_mode")
        await conn.execute("DEALLOCATE bench_plan")
    return _plan(rows)


async def plan_strategies(
    bench: Bench,
    studies: dict[str, Study],
    pairs: tuple[tuple[Case, Case], ...],
    *,
    executions: int,
    runs: int,
    log: Callable[[str], None],
) -> tuple[list[PlanRun], list[Explain]]:
    """(a) bind parameters + default plan cache, (b) + force_custom_plan, (c) finder joined.

    For each (case, warm-up case) pair, every strategy prepares its statement
    once on a new connection and executes it ``executions`` times for the
    warm-up case's study (the plan cache may switch to a generic plan after
    five); then the strategies take turns, ``runs`` executions each for the
    case's study, timed. A worker's connection serves many studies, so a cached
    statement was warmed on whatever came before: the pair (country, city/1
    month) is that risk. Noctis sends one statement text for every polygon AOI
    and another for every point AOI (coverage is a NULL literal there); the
    statements here compute no coverage, so the match's plan is all that
    differs (coverage adds the same work per row to every plan).
    """
    out: list[PlanRun] = []
    explains: list[Explain] = []
    await bench.truncate()
    for case in {c for pair in pairs for c in pair}:
        await bench.link(studies[case.key].checked)
    await bench.admin.execute("ANALYZE archive_lookup_item")

    strategies: list[tuple[str, str, bool]] = [
        ("(a) AOI bound, plan_cache_mode auto", "auto", False),
        ("(b) AOI bound, force_custom_plan (Noctis)", "force_custom_plan", False),
        ("(c) finder row joined in the statement", "auto", True),
    ]
    for case, warm_case in pairs:
        study, warm = studies[case.key], studies[warm_case.key]

        def args(s: Study, join: bool) -> list[Any]:
            if join:
                return [s.dream_id, s.finder_id]
            return bench.floor_args(s, False)

        prepared: list[tuple[asyncpg.Connection, Any, bool]] = []
        try:
            for _, mode, join in strategies:
                conn = await asyncpg.connect(
                    libpq_dsn(bench.url), server_settings={"plan_cache_mode": mode, "jit": "off"}
                )
                stmt = await conn.prepare(sql.join_finder(False) if join else sql.floor(False))
                prepared.append((conn, stmt, join))
                for _ in range(executions):
                    await stmt.fetchrow(*args(warm, join))
            seconds: list[list[float]] = [[] for _ in strategies]
            rows = 0
            for round_ in range(runs):
                for j in range(len(strategies)):
                    k = (round_ + j) % len(strategies)
                    _, stmt, join = prepared[k]
                    started = time.perf_counter()
                    row = await stmt.fetchrow(*args(study, join))
                    seconds[k].append(time.perf_counter() - started)
                    assert row is not None
                    rows = int(row["new"]) + int(row["existing"])
            for (name, _, join), (conn, stmt, _), timings in zip(
                strategies, prepared, seconds, strict=True
            ):
                counts = await conn.fetchrow(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                    " WHERE name = $1",
                    stmt.get_name(),
                )
                run = PlanRun(
                    case=case.key,
                    strategy=name,
                    warmed_on=warm_case.key,
                    seconds=timings,
                    rows=rows,
                    generic_plans=int(counts["generic_plans"]) if counts else None,
                    custom_plans=int(counts["custom_plans"]) if counts else None,
                )
                out.append(run)
                log(
                    f"    {case.key:<16} warmed on {warm_case.key:<16} {name:<44}"
                    f" {run.median * 1000:9.1f} ms  generic {run.generic_plans}"
                    f" custom {run.custom_plans}"
                )
                if warm_case == case and not join:
                    generic = (run.generic_plans or 0) > 0
                    explains.append(
                        Explain(
                            case.key,
                            f"{name}: the {'generic' if generic else 'custom'} plan in use"
                            f" after {executions} executions",
                            await _prepared_plan(
                                conn,
                                sql.floor(False),
                                study,
                                "force_generic_plan" if generic else "force_custom_plan",
                            ),
                        )
                    )
        finally:
            for conn, _, _ in prepared:
                await conn.close()
    await bench.truncate()
    return out, explains


# --------------------------------------------------------------------------- index choice


@dataclass
class IndexBuild:
    name: str
    seconds: float
    bytes: int

    @staticmethod
    def from_json(data: dict[str, Any]) -> IndexBuild:
        return IndexBuild(**data)


async def index_choice(
    bench: Bench,
    studies: dict[str, Study],
    cases: tuple[Case, ...],
    *,
    runs: int,
    warmups: int,
    log: Callable[[str], None],
) -> tuple[list[IndexRun], list[IndexBuild], list[Explain]]:
    """Composite GiST vs GiST(footprint) + btree(acquired_at) vs GiST(footprint) alone.

    The two extra indexes are built (timed), then each round runs every variant
    in turn: BEGIN; DROP the indexes the variant lacks; the idempotent rerun of
    every case (nothing written); ROLLBACK. The statement is the floor's without
    coverage, with ``force_custom_plan``: the index only changes how the
    matches are found, and coverage would add the same work to every variant.
    The first round also records EXPLAIN (ANALYZE, BUFFERS) of every case.
    """
    conn = bench.raw
    builds: list[IndexBuild] = []
    for name, ddl in EXTRA_INDEXES.items():
        await conn.execute(f"DROP INDEX IF EXISTS {name}")
        started = time.perf_counter()
        await conn.execute(ddl)
        seconds = time.perf_counter() - started
        size = int(await conn.fetchval("SELECT pg_relation_size($1::regclass)", name))
        builds.append(IndexBuild(name, seconds, size))
        log(f"    built {name}: {seconds:.1f} s, {size / 2**20:.0f} MiB")
    await conn.execute("ANALYZE archive_item")
    gist_size = int(await conn.fetchval("SELECT pg_relation_size($1::regclass)", GIST_INDEX))
    builds.insert(0, IndexBuild(GIST_INDEX, float("nan"), gist_size))

    await bench.truncate()
    for case in cases:
        await bench.link(studies[case.key].checked)
    await bench.admin.execute("ANALYZE archive_lookup_item")

    query = sql.floor(False)
    timings: dict[tuple[str, str], list[float]] = {}
    rows: dict[str, int] = {}
    plans: dict[tuple[str, str], str] = {}
    variants = list(INDEX_VARIANTS)
    for round_ in range(warmups + runs):
        for j in range(len(variants)):
            variant = variants[(round_ + j) % len(variants)]
            tr = conn.transaction()
            await tr.start()
            try:
                for index in INDEX_VARIANTS[variant]:
                    await conn.execute(f"DROP INDEX {index}")
                for case in cases:
                    args = bench.floor_args(studies[case.key], False)
                    started = time.perf_counter()
                    row = await conn.fetchrow(query, *args)
                    elapsed = time.perf_counter() - started
                    assert row is not None
                    rows[case.key] = int(row["new"]) + int(row["existing"])
                    if round_ >= warmups:
                        timings.setdefault((case.key, variant), []).append(elapsed)
                    if round_ == 0:
                        explain = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + query, *args)
                        plans[(case.key, variant)] = _plan(explain)
            finally:
                await tr.rollback()
        log(f"    index choice: round {round_ + 1}/{warmups + runs} done")

    out = [
        IndexRun(
            case=case_key,
            variant=variant,
            mode="rerun",
            seconds=seconds,
            rows=rows[case_key],
            indexes=indexes_used(plans[(case_key, variant)]),
        )
        for (case_key, variant), seconds in timings.items()
    ]
    explains = [
        Explain(case_key, f"{variant}: the rerun statement (no coverage)", plan)
        for (case_key, variant), plan in plans.items()
    ]
    for name in EXTRA_INDEXES:
        await conn.execute(f"DROP INDEX IF EXISTS {name}")
    await bench.truncate()
    return out, builds, explains
