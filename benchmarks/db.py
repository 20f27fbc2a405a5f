"""The PostGIS server, the archive builds and the machine facts.

The server is a private cluster (:class:`noctis.devtools.localdb.LocalPostgis`) started
**durable** (``fast=False``: fsync, synchronous_commit and full_page_writes
on, as in production), unless a server URL is given. Every commit then waits
for its WAL flush, as a worker's commit would; the load is timed with the same
settings, so its times are those of a real bulk load.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.metadata
import os
import platform
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import URL, make_url

from benchmarks.cases import Case, aoi_ewkb
from noctis import migrate
from noctis.db import libpq_dsn
from noctis.devtools.localdb import LocalPostgis
from noctis.devtools.synthetic import ArchiveSpec, load_archive_url
from noctis.settings import Settings
from noctis.study import CheckedStudy, check_study
from noctis.unit_of_work import UnitOfWork

GIST_INDEX = "ix_archive_item_footprint_acquired_at"
PACKAGES = (
    "prefect",
    "sqlalchemy",
    "asyncpg",
    "geoalchemy2",
    "shapely",
    "numpy",
    "alembic",
    "pydantic",
    "psycopg",
)
SERVER_SETTINGS = (
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "max_wal_size",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "jit",
    "random_page_cost",
    "max_parallel_workers_per_gather",
    "autovacuum",
)


def settings_for(url: URL) -> Settings:
    """Noctis settings on ``url``; Augur off; no ``.env`` read."""
    return Settings(
        atlas_db_url=url.render_as_string(hide_password=False),
        noctis_augur_api_url="",
        _env_file=None,
    )


@dataclass(frozen=True)
class Server:
    admin_url: URL
    origin: str


@contextlib.contextmanager
def server(url: str | None, *, durable: bool = True) -> Iterator[Server]:
    """The given server (an admin URL), or a private durable PostGIS cluster."""
    if url:
        yield Server(make_url(url).set(drivername="postgresql+asyncpg"), "the given server URL")
        return
    with LocalPostgis(fast=not durable) as pg:
        how = "durable: fsync on" if durable else "fast: fsync off"
        yield Server(pg.url("postgres"), f"a private LocalPostgis cluster ({pg.bindir}, {how})")


@contextlib.asynccontextmanager
async def archive(
    size: int, server_url: str | None, *, log: Callable[[str], None], durable: bool = True
) -> AsyncIterator[URL]:
    """The URL of a migrated database holding the synthetic archive of ``size`` items, on the
    given server or a private cluster (:func:`server`); the database is dropped on exit."""
    with server(server_url, durable=durable) as where:
        build, url = await build_archive(where.admin_url, size, log=log)
        log(f"{size_label(size)} items loaded in {build.load_s:.0f} s")
        try:
            yield url
        finally:
            await drop_database(where.admin_url, build.database)


def size_label(size: int) -> str:
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size % 1_000 == 0:
        return f"{size // 1_000}k"
    return str(size)


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if match is None:
        raise ValueError(f"bad archive size {text!r}: use e.g. 100k, 1M, 5M or 250000")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * {"": 1, "k": 1_000, "m": 1_000_000}[unit])


@dataclass
class Build:
    """One archive built for the benchmarks, and how long each phase took."""

    size: int
    database: str
    rows: int = 0
    migrate_s: float = 0.0
    copy_s: float = 0.0
    index_s: float = 0.0
    analyze_s: float = 0.0
    vacuum_s: float = 0.0
    index_def: str = ""
    table_bytes: int = 0
    gist_bytes: int = 0
    other_index_bytes: int = 0

    @property
    def load_s(self) -> float:
        """COPY + CREATE INDEX + ANALYZE: the load the issue times."""
        return self.copy_s + self.index_s + self.analyze_s

    @property
    def total_s(self) -> float:
        return self.migrate_s + self.load_s + self.vacuum_s

    @staticmethod
    def from_json(data: dict[str, Any]) -> Build:
        return Build(**data)


async def create_database(admin_url: URL, name: str) -> URL:
    conn = await asyncpg.connect(libpq_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.set(database=name)


async def drop_database(admin_url: URL, name: str) -> None:
    conn = await asyncpg.connect(libpq_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def build_archive(
    admin_url: URL,
    size: int,
    *,
    log: Callable[[str], None],
    seed: int = ArchiveSpec(size=0).seed,
    spec: ArchiveSpec | None = None,
) -> tuple[Build, URL]:
    """A migrated database holding the synthetic archive of ``size`` items (``spec``, when
    given, says what else to generate: its size is ``size``).

    Phases (each timed): migrate; drop the GiST index; COPY the archive; CREATE
    the index again (its definition read from the catalog before the drop, so
    it is exactly the migration's); ANALYZE; VACUUM (sets hint bits and the
    visibility map now rather than in the middle of a measurement).
    """
    name = f"noctis_bench_{size_label(size).lower()}_{uuid.uuid4().hex[:6]}"
    build = Build(size=size, database=name)
    url = await create_database(admin_url, name)

    started = time.perf_counter()
    await asyncio.to_thread(migrate.upgrade, settings_for(url))
    build.migrate_s = time.perf_counter() - started

    conn = await asyncpg.connect(libpq_dsn(url))
    try:
        index_def = await conn.fetchval("SELECT pg_get_indexdef($1::regclass)", GIST_INDEX)
        build.index_def = str(index_def)
        await conn.execute(f"DROP INDEX {GIST_INDEX}")

        spec = (
            ArchiveSpec(size=size, seed=seed)
            if spec is None
            else dataclasses.replace(spec, size=size)
        )
        marks = {"next": 0.0}

        def progress(done: int, total: int) -> None:
            share = done / total
            if share >= marks["next"]:
                log(f"  COPY {done:,}/{total:,} ({share:.0%})")
                marks["next"] = share + 0.25

        started = time.perf_counter()
        build.rows = await load_archive_url(url, spec, progress=progress)
        build.copy_s = time.perf_counter() - started
        log(f"  COPY {build.rows:,} rows: {build.copy_s:.1f} s")

        started = time.perf_counter()
        await conn.execute(build.index_def)
        build.index_s = time.perf_counter() - started
        log(f"  CREATE INDEX: {build.index_s:.1f} s")

        started = time.perf_counter()
        await conn.execute("ANALYZE archive_item")
        build.analyze_s = time.perf_counter() - started

        started = time.perf_counter()
        await conn.execute("VACUUM archive_item")
        build.vacuum_s = time.perf_counter() - started
        log(f"  ANALYZE: {build.analyze_s:.1f} s, VACUUM: {build.vacuum_s:.1f} s")

        row = await conn.fetchrow(
            """
            SELECT pg_relation_size('archive_item') AS heap,
                   pg_relation_size($1::regclass) AS gist,
                   pg_indexes_size('archive_item') - pg_relation_size($1::regclass) AS other
            """,
            GIST_INDEX,
        )
        assert row is not None
        build.table_bytes, build.gist_bytes, build.other_index_bytes = (
            int(row["heap"]),
            int(row["gist"]),
            int(row["other"]),
        )
    finally:
        await conn.close()
    return build, url


@dataclass
class Machine:
    facts: dict[str, str] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    server_settings: dict[str, str] = field(default_factory=dict)
    source_files: dict[str, str] = field(default_factory=dict)


def _meminfo() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kb = int(line.split()[1])
                return f"{kb / 1024 / 1024:.1f} GiB"
    return "unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


REPO = Path(__file__).resolve().parents[1]


def source_files() -> dict[str, str]:
    """sha256 (12 hex) of every file under src/noctis: to tell which changed during a run."""
    import hashlib

    return {
        path.relative_to(REPO).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted((REPO / "src" / "noctis").rglob("*.py"))
    }


def source_state() -> str:
    """Which Noctis was measured: the commit, the uncommitted files under src/ and migrations/,
    and a digest of src/noctis (other work lands in the tree while benchmarks run)."""
    import hashlib
    import subprocess

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    status = git("status", "--porcelain", "src", "migrations").splitlines()
    dirty = [line.split(maxsplit=1)[-1] for line in status if line.strip()]
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "noctis").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    state = f"commit {commit}"
    if dirty:
        state += f" + uncommitted: {', '.join(dirty)}"
    return f"{state}; sha256(src/noctis/**/*.py) {digest.hexdigest()[:12]}"


async def machine_facts(url: URL, server_origin: str) -> Machine:
    machine = Machine()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    machine.facts = {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} cores"
        + (f" ({affinity} usable)" if affinity and affinity != os.cpu_count() else ""),
        "Memory": _meminfo(),
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": platform.python_version(),
        "Server": server_origin,
        "Noctis source": await asyncio.to_thread(source_state),
    }
    machine.source_files = await asyncio.to_thread(source_files)
    conn = await asyncpg.connect(libpq_dsn(url))
    try:
        machine.facts["PostgreSQL"] = str(await conn.fetchval("SHOW server_version"))
        machine.facts["PostGIS"] = str(await conn.fetchval("SELECT postgis_full_version()"))
        machine.facts["btree_gist"] = str(
            await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'btree_gist'")
        )
        for name in SERVER_SETTINGS:
            machine.server_settings[name] = str(await conn.fetchval(f"SHOW {name}"))
    finally:
        await conn.close()
    for package in PACKAGES:
        try:
            machine.packages[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            machine.packages[package] = "not installed"
    return machine


async def add_study(admin: asyncpg.Connection, factory: Any, case: Case, name: str) -> CheckedStudy:
    """A finder on ``case``'s AOI and window and a dream, both called ``name``, checked as the
    flow checks them (``factory``: a session factory on the same database)."""
    finder_id = await admin.fetchval(
        "INSERT INTO imagery_finder (name, location, start_date, end_date)"
        " VALUES ($1, ST_GeomFromEWKB($2), $3, $4) RETURNING id",
        name, aoi_ewkb(case.aoi), case.start, case.end,
    )  # fmt: skip
    dream_id = await admin.fetchval("INSERT INTO dream (name) VALUES ($1) RETURNING id", name)
    async with UnitOfWork(factory) as uow:
        return await check_study(uow, finder_id=int(finder_id), dream_id=int(dream_id))
