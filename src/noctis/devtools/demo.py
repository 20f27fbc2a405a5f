"""``noctis demo``: the whole job on a throwaway PostGIS and a synthetic archive.

Starts a private PostGIS (local binaries, else Docker), migrates it, loads a
deterministic synthetic archive, creates a dream and a finder around a city,
runs the real ``imagery-finder-study`` flow (on an ephemeral Prefect unless
PREFECT_API_URL is set), checks the recorded rows against an independent SQL
query, prints the results and writes a PNG map. Augur is not notified: the
demo's data is synthetic.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg
from geoalchemy2.shape import from_shape
from prefect.settings import PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from sqlalchemy.engine import URL

from noctis import migrate, synthetic
from noctis.console import items_table, result_table
from noctis.db import libpq_dsn, make_engine, make_session_factory
from noctis.errors import NoctisError
from noctis.flows.imagery_finder_study import run_here
from noctis.localdb import INSTALL_HINT, LocalPostgis, LocalPostgisUnavailable, free_port
from noctis.models import Dream, ImageryFinder
from noctis.repositories import StudyItem
from noctis.results import StudyResult, share
from noctis.settings import Settings, use_settings
from noctis.unit_of_work import UnitOfWork

DOCKER_IMAGE = "postgis/postgis:15-3.5"
DEMO_DB = "noctis_demo"
# Deliberately not the repository's statement: an independent formulation of the
# match rule (a join to the finder row, the window built in SQL) to check it against.
REFERENCE_MATCHES = """
    SELECT a.id FROM archive_item a JOIN imagery_finder f ON f.id = $1
    WHERE ST_Intersects(a.footprint, f.location)
      AND (f.start_date IS NULL OR a.acquired_at >= f.start_date::timestamp AT TIME ZONE 'UTC')
      AND (f.end_date IS NULL OR a.acquired_at < (f.end_date + 1)::timestamp AT TIME ZONE 'UTC')
      AND (f.max_cloud_cover IS NULL OR a.cloud_cover <= f.max_cloud_cover)
      AND (f.collections IS NULL OR a.collection = ANY (f.collections))
    EXCEPT
    SELECT archive_item_id FROM archive_lookup_item WHERE imagery_finder_id = $1 AND dream_id = $2
"""


@dataclass(frozen=True)
class DemoDatabase:
    server: URL
    how: str
    stop_hint: str


@contextlib.contextmanager
def throwaway_postgis(console: Console, *, keep: bool) -> Iterator[DemoDatabase]:
    """A private PostGIS: local binaries first, then Docker; a clear error otherwise."""
    try:
        pg = LocalPostgis().start()
    except LocalPostgisUnavailable as local_error:
        if (
            shutil.which("docker") is None
            or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
        ):
            raise NoctisError(
                f"noctis demo needs PostGIS and found none ({local_error}). "
                f"To fix it: {INSTALL_HINT}"
            ) from local_error
        with _docker_postgis(console, keep=keep) as db:
            yield db
        return
    stop = f"pg_ctl -D {pg.datadir} stop && rm -rf {pg.root}"
    try:
        yield DemoDatabase(pg.url(), f"local PostgreSQL ({pg.bindir})", stop)
    finally:
        if not keep:
            pg.stop()


@contextlib.contextmanager
def _docker_postgis(console: Console, *, keep: bool) -> Iterator[DemoDatabase]:
    port = free_port()
    name = f"noctis-demo-{port}"
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, "-e", "POSTGRES_PASSWORD=demo",
         "-p", f"127.0.0.1:{port}:5432", DOCKER_IMAGE],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        url = URL.create("postgresql+asyncpg", username="postgres", password="demo",  # noqa: S106
                         host="127.0.0.1", port=port, database="postgres")  # fmt: skip
        asyncio.run(_wait_for(url))
        yield DemoDatabase(url, f"Docker ({DOCKER_IMAGE})", f"docker stop {name}")
    finally:
        if not keep:
            subprocess.run(["docker", "stop", name], capture_output=True, check=False)


async def _wait_for(url: URL, wait_seconds: float = 60) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            conn = await asyncpg.connect(libpq_dsn(url))
            await conn.close()
            return
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _create_database(server: URL) -> None:
    conn = await asyncpg.connect(libpq_dsn(server))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DEMO_DB}"')
    finally:
        await conn.close()


async def _seed_study(settings: Settings, city: str) -> tuple[int, int]:
    aoi = synthetic.region_aoi(city, km=150)
    engine = make_engine(settings)
    try:
        async with UnitOfWork(make_session_factory(engine)) as uow:
            dream = Dream(name=f"Demo study around {city}")
            finder = ImageryFinder(
                name=f"{city}, 150 km, 2023-2025, cloud <= 50%",
                location=from_shape(aoi, srid=4326),
                start_date=date(2023, 1, 1),
                end_date=date(2025, 12, 31),
                max_cloud_cover=50,
            )
            uow.session.add_all([dream, finder])
            await uow.session.flush()
            ids = (finder.id, dream.id)
            await uow.commit()
        return ids
    finally:
        await engine.dispose()


async def _verify(settings: Settings, finder_id: int, dream_id: int) -> int:
    """Matches the independent query finds that the flow did not record (0 = agree)."""
    conn = await asyncpg.connect(libpq_dsn(settings.atlas_url))
    try:
        missing = await conn.fetch(REFERENCE_MATCHES, finder_id, dream_id)
        await conn.execute("ANALYZE archive_lookup_item")
        return len(missing)
    finally:
        await conn.close()


async def _study_items(
    settings: Settings, finder_id: int, dream_id: int
) -> tuple[list[StudyItem], list[bytes]]:
    engine = make_engine(settings)
    try:
        async with UnitOfWork(make_session_factory(engine)) as uow:
            top = await uow.lookups.top_items(finder_id=finder_id, dream_id=dream_id, limit=10)
            shapes = await uow.lookups.footprints(finder_id=finder_id, dream_id=dream_id)
            return top, shapes
    finally:
        await engine.dispose()


def _load(console: Console, settings: Settings, size: int) -> None:
    spec = synthetic.ArchiveSpec(size=size)
    columns = [*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, BarColumn(bar_width=0), console=console, transient=False) as bar:
        task = bar.add_task("Loading the synthetic archive (COPY)", total=size)
        url = settings.atlas_url.render_as_string(hide_password=False)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        asyncio.run(synthetic.load_archive_url(url, spec, progress=progress))
    with console.status("ANALYZE archive_item"):
        asyncio.run(_analyze(settings))


async def _analyze(settings: Settings) -> None:
    conn = await asyncpg.connect(libpq_dsn(settings.atlas_url))
    try:
        await conn.execute("ANALYZE archive_item")
    finally:
        await conn.close()


def run_demo(*, size: int, keep: bool, map_path: Path, city: str, console: Console) -> None:
    """The demo; every failure is a :class:`NoctisError` with the reason."""
    if city not in {c.name for c in synthetic.CITIES}:
        raise NoctisError(f"Unknown city {city!r}: try Paris, Tokyo, New York or Suva")
    with throwaway_postgis(console, keep=keep) as db:
        console.print(f"PostGIS: {db.how}")
        settings = Settings(
            atlas_db_url=db.server.set(database=DEMO_DB).render_as_string(hide_password=False),
            noctis_augur_api_url="",
            _env_file=None,
        )
        with console.status("Creating and migrating the Atlas schema"):
            asyncio.run(_create_database(db.server))
            migrate.upgrade(settings)
        _load(console, settings, size)
        finder_id, dream_id = asyncio.run(_seed_study(settings, city))
        with _flow_settings(settings), console.status("Running the imagery-finder-study flow"):
            try:
                result = asyncio.run(run_here(finder_id, dream_id))
            except NoctisError as e:
                raise NoctisError(f"The demo's study failed: {e}") from e
        console.print(result_table(result))
        missing = asyncio.run(_verify(settings, finder_id, dream_id))
        if missing:
            raise NoctisError(f"{missing} matches of the reference query were not recorded")
        console.print(
            f"[green]✓[/green] the {result.matched_count} recorded items equal an independent "
            "SQL formulation of the match rule"
        )
        top, footprints = asyncio.run(_study_items(settings, finder_id, dream_id))
        console.print(items_table(top))
        if _write_map(map_path, city, footprints, result):
            console.print(f"Map of the AOI and the matched footprints: {map_path}")
        if keep:
            console.print(
                f"The database is still running: psql '{libpq_dsn(settings.atlas_url)}'\n"
                f"Stop it with: {db.stop_hint}"
            )


@contextlib.contextmanager
def _flow_settings(settings: Settings) -> Iterator[None]:
    """The flow reads the demo's settings (not the environment's), and the ephemeral Prefect
    server it may start phones no one."""
    with use_settings(settings), temporary_settings({PREFECT_SERVER_ANALYTICS_ENABLED: False}):
        yield


def _write_map(path: Path, city: str, footprints: list[bytes], result: StudyResult) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    import shapely

    from noctis.demo_map import draw

    aoi = synthetic.region_aoi(city, km=150)
    geoms = list(shapely.from_wkb(footprints)) if footprints else []
    figure = draw(plt, aoi=aoi, footprints=geoms, title=_title(result))
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return True


def _title(result: StudyResult) -> str:
    coverage = "" if result.coverage is None else f", {share(result.coverage)} of the AOI covered"
    return f"{result.finder_name}\n{result.matched_count} matched items ({result.window}){coverage}"
