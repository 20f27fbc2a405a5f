"""The link step and its rivals, case by case, on one archive.

Every approach records the same rows: (dream, finder, item, coverage) for every
match. "Fresh" runs start from an empty ``archive_lookup_item`` (TRUNCATE, untimed,
before every run, warm-ups included); "rerun" runs find the study already
linked, so nothing is written. Timing covers what the caller waits for, from
taking a connection to the commit.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

import asyncpg
from sqlalchemy import event, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from benchmarks import sql
from benchmarks.cases import Case, aoi_ewkb
from benchmarks.db import settings_for
from benchmarks.stats import Measurement, measure_interleaved
from noctis.db import APPLICATION_NAME, libpq_dsn, make_engine, make_session_factory
from noctis.models import ArchiveItem, ArchiveLookupItem
from noctis.repositories.archive import coverage_expression, match_conditions
from noctis.study import CheckedStudy, check_study
from noctis.unit_of_work import UnitOfWork

CUSTOM_PLAN = text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")
UNIQUE = "uq_archive_lookup_item_study_item"
SMALL = 2_000
"""Below this many matches the link's fixed costs are a visible share: they are taken apart."""
STUDY_LOCK = (
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
    " set_config('jit', 'off', true),"
    " pg_advisory_xact_lock(hashtextextended('noctis.study:' || $1 || ':' || $2, 0))"
)


@dataclass(frozen=True)
class Caps:
    """How many matches the slow approaches fetch and write per run at most.

    A capped run fetches the first ``cap`` matches (LIMIT) and writes them; its
    time is projected to all the matches: the fetch and the write phases scale
    with the rows, the rest (session, BEGIN, COMMIT) does not.
    """

    per_row_rows: int = 1_000
    per_row_seconds: float = 10.0
    orm_rows: int = 10_000
    executemany_rows: int = 20_000


@dataclass
class Study:
    case: Case
    finder_id: int
    dream_id: int
    checked: CheckedStudy
    ewkb: bytes
    matches: int = -1
    plan: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.case.start, dtime(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.case.end + timedelta(days=1), dtime(0), tzinfo=UTC)

    @property
    def area_m2(self) -> float | None:
        return self.checked.criteria.area_m2

    def without_coverage(self) -> CheckedStudy:
        criteria = dataclasses.replace(self.checked.criteria, area_m2=None)
        return dataclasses.replace(self.checked, criteria=criteria)


@dataclass
class Phases:
    """One run of a fetch-then-write approach."""

    fetched: int
    written: int
    fetch_s: float
    write_s: float
    commit_s: float


def _engine_like_noctis(settings: Any, *, pre_ping: bool = True) -> AsyncEngine:
    """``noctis.db.make_engine``'s engine with ``pool_pre_ping`` chosen (for the candidate)."""
    server_settings = {
        "application_name": APPLICATION_NAME,
        "statement_timeout": str(settings.atlas_db_statement_timeout_ms),
    }
    return create_async_engine(
        settings.atlas_url,
        pool_size=settings.atlas_db_pool_size,
        max_overflow=settings.atlas_db_max_overflow,
        pool_pre_ping=pre_ping,
        connect_args={
            "server_settings": server_settings,
            "timeout": settings.atlas_db_connect_timeout,
        },
    )


class Bench:
    """Connections to one archive database and the approaches, ready to be timed."""

    engine: AsyncEngine
    factory: async_sessionmaker[AsyncSession]
    admin: asyncpg.Connection
    raw: asyncpg.Connection

    def __init__(
        self,
        url: URL,
        *,
        runs: int,
        warmups: int,
        caps: Caps,
        max_runs: int | None = None,
        budget_s: float = 0.0,
    ) -> None:
        self.url = url
        self.runs = runs
        self.max_runs = max_runs
        self.budget_s = budget_s
        self.warmups = warmups
        self.caps = caps
        self.captured: list[tuple[str, tuple[Any, ...]]] = []
        self.capture = False

    async def open(self) -> None:
        settings = settings_for(self.url)
        self.engine = make_engine(settings)
        self.factory = make_session_factory(self.engine)
        # The candidate: make_engine's engine without pool_pre_ping (no BEGIN + ROLLBACK
        # per checkout).
        self.engine_no_ping = _engine_like_noctis(settings, pre_ping=False)
        self.factory_no_ping = make_session_factory(self.engine_no_ping)
        self.admin = await asyncpg.connect(libpq_dsn(self.url))
        # The floor's connection: the planner sees parameter values like literals, and JIT is
        # off, as Noctis sets both for its statements.
        self.raw = await asyncpg.connect(
            libpq_dsn(self.url),
            server_settings={
                "plan_cache_mode": "force_custom_plan",
                "jit": "off",
                "statement_timeout": "0",
            },
        )
        # The comparison: the same with the server's default, JIT on.
        self.raw_jit_on = await asyncpg.connect(
            libpq_dsn(self.url),
            server_settings={"plan_cache_mode": "force_custom_plan", "statement_timeout": "0"},
        )
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._on_execute)

    async def close(self) -> None:
        await self.raw.close()
        await self.raw_jit_on.close()
        await self.admin.close()
        await self.engine.dispose()
        await self.engine_no_ping.dispose()

    def _on_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if self.capture and "INSERT INTO archive_lookup_item" in statement:
            self.captured.append((statement, tuple(parameters or ())))

    # ------------------------------------------------------------------ studies

    async def add_study(self, case: Case) -> Study:
        """A finder for the case and a dream, and the criteria ``check_study`` builds."""
        ewkb = aoi_ewkb(case.aoi)
        finder_id = await self.admin.fetchval(
            "INSERT INTO imagery_finder (name, location, start_date, end_date)"
            " VALUES ($1, ST_GeomFromEWKB($2), $3, $4) RETURNING id",
            f"bench {case.key}",
            ewkb,
            case.start,
            case.end,
        )
        dream_id = await self.new_dream(f"bench {case.key}")
        async with UnitOfWork(self.factory) as uow:
            checked = await check_study(uow, finder_id=int(finder_id), dream_id=dream_id)
        return Study(case, int(finder_id), dream_id, checked, ewkb)

    async def new_dream(self, name: str) -> int:
        return int(
            await self.admin.fetchval("INSERT INTO dream (name) VALUES ($1) RETURNING id", name)
        )

    async def truncate(self) -> None:
        await self.admin.execute("TRUNCATE archive_lookup_item CASCADE")

    async def planned(self, study: Study) -> dict[str, Any]:
        """What the planner makes of Noctis' statement for this study (EXPLAIN, not run):
        the estimated cost and rows, the scan of archive_item, and whether JIT compiles it.
        The statement is the last one captured (the caller runs the link with capture on)."""
        statement, params = self.captured[-1]
        # On the JIT-on connection: whether JIT would compile it, were it not turned off.
        tr = self.raw_jit_on.transaction()
        await tr.start()
        try:
            rows = await self.raw_jit_on.fetch("EXPLAIN " + statement, *params)
        finally:
            await tr.rollback()
        plan = "\n".join(str(r[0]) for r in rows)
        top = re.search(r"cost=[0-9.]+\.\.([0-9.]+)", plan)
        scan = re.search(
            r"((?:Bitmap Heap|Index|Seq) Scan)[^(]*on archive_item[^(]*\(cost=[^)]*rows=(\d+)", plan
        )
        jit = "none"
        if "JIT:" in plan:
            jit = "inline+optimize" if "Optimization true" in plan else "compile"
        study.plan = {
            "cost": float(top.group(1)) if top else None,
            "scan": scan.group(1) if scan else "?",
            "estimated_rows": int(scan.group(2)) if scan else None,
            "jit": jit,
        }
        return study.plan

    async def checksum(self, study: Study) -> tuple[int, int, float]:
        row = await self.admin.fetchrow(
            "SELECT count(*), coalesce(sum(archive_item_id), 0), coalesce(sum(coverage), 0)"
            " FROM archive_lookup_item WHERE dream_id = $1 AND imagery_finder_id = $2",
            study.dream_id,
            study.finder_id,
        )
        assert row is not None
        return int(row[0]), int(row[1]), round(float(row[2]), 6)

    # ------------------------------------------------------------------ approaches

    async def link(self, checked: CheckedStudy, *, ping: bool = True) -> int:
        """Noctis' link step as the floor does it: the study's lock, ``LookupRepository.link``
        and COMMIT, in a UnitOfWork. ``link_study`` also measures the union coverage in the
        same transaction (for the outbox's notification: issue 12) and may plan (issue 15):
        separate statements that the floor does not make, so they are not in this ratio."""
        async with UnitOfWork(self.factory if ping else self.factory_no_ping) as uow:
            await uow.lookups.lock(finder_id=checked.finder_id, dream_id=checked.dream_id)
            result = await uow.lookups.link(
                criteria=checked.criteria, dream_id=checked.dream_id, locked=True
            )
            await uow.commit()
        return result.total

    async def union_sql(self, study: Study, query: str) -> float:
        args = [study.dream_id, study.finder_id, study.ewkb, study.area_m2]
        return float(await self.raw.fetchval(query, *args))

    def floor_args(self, study: Study, coverage: bool) -> list[Any]:
        args: list[Any] = [study.dream_id, study.finder_id, study.ewkb, study.start, study.end]
        if coverage:
            args.append(study.area_m2)
        return args

    async def floor(self, study: Study, query: str, coverage: bool, *, jit: bool = False) -> int:
        conn = self.raw if not jit else self.raw_jit_on
        row = await conn.fetchrow(query, *self.floor_args(study, coverage))
        assert row is not None
        return int(row["new"]) + int(row["existing"])

    async def floor_locked(self, study: Study, query: str, coverage: bool) -> int:
        """The floor's statement in the link's transaction: BEGIN, lock, statement, COMMIT.

        The same round trips ``LookupRepository.link`` makes (less the pool's
        pre-ping), without SQLAlchemy: what the protocol costs, apart from the ORM.
        """
        async with self.raw.transaction():
            await self.raw.execute(STUDY_LOCK, str(study.finder_id), str(study.dream_id))
            row = await self.raw.fetchrow(query, *self.floor_args(study, coverage))
        assert row is not None
        return int(row["new"]) + int(row["existing"])

    async def _fetch(
        self, session: AsyncSession, checked: CheckedStudy, limit: int
    ) -> list[tuple[int, float | None]]:
        criteria = checked.criteria
        stmt = (
            select(ArchiveItem.id, coverage_expression(criteria))
            .where(*match_conditions(criteria))
            .limit(limit)
        )
        await session.execute(CUSTOM_PLAN)
        return [(int(item_id), coverage) for item_id, coverage in await session.execute(stmt)]

    def _values(
        self, checked: CheckedStudy, item_id: int, coverage: float | None
    ) -> dict[str, Any]:
        return {
            "dream_id": checked.dream_id,
            "imagery_finder_id": checked.finder_id,
            "archive_item_id": item_id,
            "coverage": coverage,
        }

    async def per_row(self, checked: CheckedStudy) -> Phases:
        """Fetch the matches, then one INSERT per row (the loop a team writes first)."""
        async with self.factory() as session:
            t0 = time.perf_counter()
            rows = await self._fetch(session, checked, self.caps.per_row_rows)
            t1 = time.perf_counter()
            written = 0
            deadline = t1 + self.caps.per_row_seconds
            for item_id, coverage in rows:
                await session.execute(
                    pg_insert(ArchiveLookupItem)
                    .values(**self._values(checked, item_id, coverage))
                    .on_conflict_do_nothing(constraint=UNIQUE)
                )
                written += 1
                if time.perf_counter() > deadline:
                    break
            t2 = time.perf_counter()
            await session.commit()
            t3 = time.perf_counter()
        return Phases(len(rows), written, t1 - t0, t2 - t1, t3 - t2)

    async def orm(self, checked: CheckedStudy) -> Phases:
        """Fetch the matches, then ``session.add_all`` of ORM objects and one flush."""
        async with self.factory() as session:
            t0 = time.perf_counter()
            chosen = await self._fetch(session, checked, self.caps.orm_rows)
            t1 = time.perf_counter()
            session.add_all([ArchiveLookupItem(**self._values(checked, i, c)) for i, c in chosen])
            await session.flush()
            t2 = time.perf_counter()
            await session.commit()
            t3 = time.perf_counter()
        return Phases(len(chosen), len(chosen), t1 - t0, t2 - t1, t3 - t2)

    async def executemany(self, checked: CheckedStudy) -> Phases:
        """Fetch the matches, then one Core INSERT with a list of parameter sets.

        SQLAlchemy hands it to asyncpg's ``executemany`` (no RETURNING, so no
        insertmanyvalues batching).
        """
        async with self.factory() as session:
            t0 = time.perf_counter()
            chosen = await self._fetch(session, checked, self.caps.executemany_rows)
            t1 = time.perf_counter()
            if chosen:
                await session.execute(
                    pg_insert(ArchiveLookupItem).on_conflict_do_nothing(constraint=UNIQUE),
                    [self._values(checked, i, c) for i, c in chosen],
                )
            t2 = time.perf_counter()
            await session.commit()
            t3 = time.perf_counter()
        return Phases(len(chosen), len(chosen), t1 - t0, t2 - t1, t3 - t2)

    async def union_coverage(self, study: Study) -> float | None:
        async with UnitOfWork(self.factory) as uow:
            return await uow.lookups.union_coverage(
                criteria=study.checked.criteria, dream_id=study.dream_id
            )

    async def top_items(self, study: Study) -> int:
        async with UnitOfWork(self.factory) as uow:
            items = await uow.lookups.top_items(
                finder_id=study.finder_id, dream_id=study.dream_id, limit=10
            )
        return len(items)

    async def check(self, study: Study) -> int:
        async with UnitOfWork(self.factory) as uow:
            checked = await check_study(uow, finder_id=study.finder_id, dream_id=study.dream_id)
        return checked.finder_id

    # ------------------------------------------------------------------ timing

    async def timed(
        self,
        size: int,
        study: Study,
        approaches: list[Approach],
        *,
        runs: int | None = None,
        reference: tuple[int, int, float] | None = None,
    ) -> list[Measurement]:
        """Time the approaches taking turns (see :func:`measure_interleaved`).

        With a ``reference`` checksum, every fresh approach's first warm-up is
        checked against it: the same rows, the same coverage (unless capped).
        """
        setups = {True: self.truncate, False: None}
        checks: dict[int, tuple[int, int, float]] = {}

        async def verify(k: int) -> None:
            checks[k] = await self.checksum(study)

        results = await measure_interleaved(
            [(a.run, setups[a.fresh]) for a in approaches],
            runs=runs or self.runs,
            warmups=max(self.warmups, 1 if reference else 0),
            after_warmup=verify if reference else None,
            max_runs=self.max_runs if runs is None else None,
            round_budget_s=self.budget_s,
        )
        out = [
            self._measurement(size, study, a, r) for a, r in zip(approaches, results, strict=True)
        ]
        for k, m in enumerate(out):
            if reference is None or k not in checks or m.capped:
                continue
            expected = reference if approaches[k].coverage else (*reference[:2], 0.0)
            m.extra["checksum"] = list(checks[k])
            if checks[k] != expected:
                m.note += f" CHECKSUM MISMATCH: {checks[k]} != {expected}"
        return out

    def _measurement(
        self, size: int, study: Study, approach: Approach, results: list[tuple[float, Any]]
    ) -> Measurement:
        seconds = [s for s, _ in results]
        outcomes = [r for _, r in results]
        m = Measurement(
            size=size,
            case=study.case.key,
            approach=approach.name,
            seconds=seconds,
            rows=study.matches,
            note=approach.note,
        )
        if approach.kind == "rows":
            rows = sorted(set(outcomes))
            if rows != [study.matches]:
                m.note = (m.note + f" (rows per run {rows}, expected {study.matches})").strip()
        elif approach.kind == "phases":
            phases: list[Phases] = outcomes
            written = min(p.written for p in phases)
            m.rows_done = written
            m.extra = {
                "fetch_s": [p.fetch_s for p in phases],
                "write_s": [p.write_s for p in phases],
                "commit_s": [p.commit_s for p in phases],
            }
            if written < study.matches:
                # All n rows: the fetch of k_f rows n/k_f times over, the write of k_w rows
                # n/k_w times over; the rest (session, BEGIN, COMMIT) once.
                n = study.matches
                m.projected = [
                    s
                    + p.fetch_s * (n / max(p.fetched, 1) - 1.0)
                    + p.write_s * (n / max(p.written, 1) - 1.0)
                    for s, p in zip(seconds, phases, strict=True)
                ]
                m.note = (
                    f"capped at {written:,} of {study.matches:,} rows ({approach.note}); "
                    "time projected to all rows"
                )
            else:
                m.note = ""
        else:
            m.extra = {"value": outcomes[-1]}
        return m


@dataclass(frozen=True)
class Approach:
    name: str
    run: Callable[[], Awaitable[Any]]
    fresh: bool
    kind: str = "rows"  # rows | phases | value
    note: str = ""
    coverage: bool = True


async def measure_case(
    bench: Bench,
    size: int,
    study: Study,
    *,
    typical: bool = True,
    candidates: bool = False,
    log: Callable[[str], None],
) -> list[Measurement]:
    """Every approach on one case; leaves the lookup table empty.

    Three groups, each timed taking turns: the fresh writes (empty table before
    every run), the idempotent reruns (the study linked once beforehand), and
    the reads (union coverage, top items, the check).
    """
    cov = study.case.polygonal
    caps = bench.caps

    # Matches: Noctis' own count, before anything is timed; and the reference checksum.
    await bench.truncate()
    bench.captured.clear()
    bench.capture = True
    try:
        study.matches = await bench.link(study.checked)
    finally:
        bench.capture = False
    reference = await bench.checksum(study)
    await bench.truncate()
    planned = await bench.planned(study)
    log(f"  {study.case.key}: {study.matches:,} matches; plan {planned}")

    floor_sql = sql.floor(cov)
    fresh: list[Approach] = [
        Approach("link fresh", lambda: bench.link(study.checked), True),
        Approach("floor fresh", lambda: bench.floor(study, floor_sql, cov), True),
    ]
    # What the link's extra round trips cost, where they are a visible share.
    small = study.matches < SMALL
    if small:
        fresh.append(
            Approach(
                "floor fresh, link's transaction",
                lambda: bench.floor_locked(study, floor_sql, cov),
                True,
            )
        )
    if candidates and small:
        fresh.append(
            Approach(
                "link fresh, no pre-ping",
                lambda: bench.link(study.checked, ping=False),
                True,
                note="candidate",
            )
        )
    if cov:
        no_cov = study.without_coverage()
        floor_off = sql.floor(False)
        fresh += [
            Approach("link fresh, coverage off", lambda: bench.link(no_cov), True, coverage=False),
            Approach(
                "floor fresh, coverage off",
                lambda: bench.floor(study, floor_off, False),
                True,
                coverage=False,
            ),
        ]
    if candidates:
        fresh.append(
            Approach(
                "floor fresh, JIT on",
                lambda: bench.floor(study, floor_sql, cov, jit=True),
                True,
                note="comparison",
            )
        )
    if candidates and cov:
        no_shortcuts_sql = sql.floor(True, form="no shortcuts")
        overlay_sql = sql.floor(True, form="overlay only")
        fresh += [
            Approach(
                "floor fresh, no shortcuts",
                lambda: bench.floor(study, no_shortcuts_sql, True),
                True,
                note="comparison",
            ),
            Approach(
                "floor fresh, overlay only",
                lambda: bench.floor(study, overlay_sql, True),
                True,
                note="comparison",
            ),
        ]
    if typical:
        fresh += [
            Approach(
                "per-row INSERT",
                lambda: bench.per_row(study.checked),
                True,
                "phases",
                f"≤ {caps.per_row_rows:,} rows or {caps.per_row_seconds:.0f} s per run",
            ),
            Approach(
                "ORM add_all + flush",
                lambda: bench.orm(study.checked),
                True,
                "phases",
                f"≤ {caps.orm_rows:,} rows per run",
            ),
            Approach(
                "executemany",
                lambda: bench.executemany(study.checked),
                True,
                "phases",
                f"≤ {caps.executemany_rows:,} rows per run",
            ),
        ]
    out = await bench.timed(size, study, fresh, reference=reference)
    out[0].extra["plan"] = study.plan  # the link's, as the planner sees it

    # The study linked once, and the table analyzed (as autovacuum would have done). Before the
    # ANALYZE, with the candidates: the skip-linked rerun on a table without statistics.
    await bench.truncate()
    await bench.link(study.checked)
    if candidates:
        skip_sql = sql.floor(cov, skip_linked=True)
        out += await bench.timed(
            size,
            study,
            [
                Approach(
                    "floor rerun, no statistics",
                    lambda: bench.floor(study, floor_sql, cov),
                    False,
                    note="candidate",
                ),
                Approach(
                    "floor rerun, skip linked, no statistics",
                    lambda: bench.floor(study, skip_sql, cov),
                    False,
                    note="candidate",
                ),
            ],
            runs=bench.runs,
        )
    await bench.admin.execute("ANALYZE archive_lookup_item")
    rerun: list[Approach] = [
        Approach("link rerun", lambda: bench.link(study.checked), False),
        Approach("floor rerun", lambda: bench.floor(study, floor_sql, cov), False),
    ]
    if small:
        rerun.append(
            Approach(
                "floor rerun, link's transaction",
                lambda: bench.floor_locked(study, floor_sql, cov),
                False,
            )
        )
    if candidates and small:
        rerun.append(
            Approach(
                "link rerun, no pre-ping",
                lambda: bench.link(study.checked, ping=False),
                False,
                note="candidate",
            )
        )
    if candidates:
        skip_sql = sql.floor(cov, skip_linked=True)
        rerun += [
            Approach(
                "floor rerun, JIT on",
                lambda: bench.floor(study, floor_sql, cov, jit=True),
                False,
                note="comparison",
            ),
            Approach(
                "floor rerun, skip linked",
                lambda: bench.floor(study, skip_sql, cov),
                False,
                note="candidate",
            ),
        ]
    out += await bench.timed(size, study, rerun)

    reads: list[Approach] = [
        Approach("top items", lambda: bench.top_items(study), False, "value"),
        Approach("check study", lambda: bench.check(study), False, "value"),
    ]
    if cov:
        reads.insert(
            0, Approach("union coverage", lambda: bench.union_coverage(study), False, "value")
        )
    if cov and candidates:
        reads += [
            Approach(
                "union coverage, hand-written",
                lambda: bench.union_sql(study, sql.UNION_COVERAGE),
                False,
                "value",
            ),
            Approach(
                "union coverage, per-match overlay",
                lambda: bench.union_sql(study, sql.UNION_COVERAGE_PER_MATCH),
                False,
                "value",
                note="comparison",
            ),
        ]
    out += await bench.timed(size, study, reads)
    await bench.truncate()
    for m in out:
        rate = f", {m.rows_per_s:,.0f} rows/s" if m.rows_per_s else ""
        log(f"    {m.approach:<28} {m.effective * 1000:10.1f} ms{rate} {m.note}")
    return out
