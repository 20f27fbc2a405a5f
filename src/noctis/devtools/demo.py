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
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import asyncpg
from geoalchemy2.shape import from_shape
from prefect.settings import (
    PREFECT_SERVER_ANALYTICS_ENABLED,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    temporary_settings,
)
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from sqlalchemy.engine import URL

from noctis import migrate
from noctis.console import items_table, result_table
from noctis.db import libpq_dsn, make_engine, make_session_factory
from noctis.devtools import synthetic
from noctis.devtools.reference import ReferenceCheck, check_against_reference
from noctis.devtools.throwaway import throwaway_postgis
from noctis.errors import NoctisError
from noctis.flows.imagery_finder_study import run_here
from noctis.models import Dream, ImageryFinder
from noctis.repositories import StudyItem
from noctis.results import StudyResult, share
from noctis.settings import Settings, given_settings, use_settings
from noctis.unit_of_work import UnitOfWork

DEMO_DB = "noctis_demo"


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


async def _verify(settings: Settings, finder_id: int, dream_id: int) -> ReferenceCheck:
    """The recorded rows against the independent formulation of the match rule."""
    conn = await asyncpg.connect(libpq_dsn(settings.atlas_libpq_url))
    try:
        check = await check_against_reference(conn, finder_id, dream_id)
        await conn.execute("ANALYZE archive_lookup_item")
        return check
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

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        asyncio.run(synthetic.load_archive_url(settings.atlas_libpq_url, spec, progress=progress))
    with console.status("ANALYZE archive_item"):
        asyncio.run(_analyze(settings))


async def _analyze(settings: Settings) -> None:
    conn = await asyncpg.connect(libpq_dsn(settings.atlas_libpq_url))
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
        settings = given_settings(  # the shell's ATLAS_* and NOCTIS_* are not the demo's
            atlas_db_url=db.server.set(database=DEMO_DB).render_as_string(hide_password=False),
            noctis_augur_api_url="",
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
        check = asyncio.run(_verify(settings, finder_id, dream_id))
        if not check.agrees:
            raise NoctisError(
                f"The recorded rows differ from the reference match: {len(check.missing)} "
                f"missing, {len(check.unexpected)} unexpected"
            )
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
                f"The database is still running: psql '{libpq_dsn(settings.atlas_libpq_url)}'\n"
                f"Stop it with: {db.stop_hint}"
            )


EPHEMERAL_STARTUP_S = 90
"""The least start-up time the demo gives Prefect's ephemeral server (Prefect's default: 20 s).
A first run on a fresh machine, its files not yet in the page cache, took longer than 20 s on 2
cores once (2026-12-01, right after a CI run), and the README promises that the demo runs."""


@contextlib.contextmanager
def _flow_settings(settings: Settings) -> Iterator[None]:
    """The flow reads the demo's settings (not the environment's), and the ephemeral Prefect
    server it may start phones no one and has :data:`EPHEMERAL_STARTUP_S` to start."""
    startup = max(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(), EPHEMERAL_STARTUP_S)
    prefect_settings = {
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: startup,
    }
    with use_settings(settings), temporary_settings(prefect_settings):
        yield


def _write_map(path: Path, city: str, footprints: list[bytes], result: StudyResult) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    import shapely

    from noctis.devtools.maps import draw

    aoi = synthetic.region_aoi(city, km=150)
    geoms = list(shapely.from_wkb(footprints)) if footprints else []
    figure = draw(plt, aoi=aoi, footprints=geoms, title=_title(result))
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return True


def _title(result: StudyResult) -> str:
    coverage = "" if result.coverage is None else f", {share(result.coverage)} of the AOI covered"
    return f"{result.finder_name}\n{result.matched_count} matched items ({result.window}){coverage}"
