"""Shared fixtures: a real PostGIS (see tests/postgis.py), one migrated template
database, and a fresh database cloned from it for every test that asks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from noctis import migrate
from noctis.db import make_engine, make_session_factory
from noctis.settings import Settings
from tests import postgis

TEMPLATE = "noctis_template"


def _settings_for(url: URL) -> Settings:
    return Settings(
        atlas_db_url=url.render_as_string(hide_password=False),  # type: ignore[arg-type]
        noctis_augur_api_url="",
        _env_file=None,  # type: ignore[call-arg]
    )


def _admin(url: URL) -> psycopg.Connection:
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(dsn, autocommit=True)


@pytest.fixture(scope="session")
def postgis_url() -> Iterator[URL]:
    """An admin URL (asyncpg) to a PostGIS server the tests own."""
    try:
        server = postgis.postgis_server()
        url, origin = server.__enter__()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    print(f"\nPostGIS for the tests: {origin}")
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def template_url(postgis_url: URL) -> URL:
    """A database migrated to head once per session, cloned by ``atlas_settings``."""
    name = f"{TEMPLATE}_{uuid.uuid4().hex[:8]}"
    with _admin(postgis_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgis_url.set(database=name)
    migrate.upgrade(_settings_for(url))
    return url


@pytest.fixture
def atlas_settings(postgis_url: URL, template_url: URL) -> Iterator[Settings]:
    """Settings pointing at a fresh, migrated, empty database (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with _admin(postgis_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_url.database}"')
    try:
        yield _settings_for(postgis_url.set(database=name))
    finally:
        with _admin(postgis_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(atlas_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(atlas_settings)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_session_factory(engine)


@pytest.fixture
async def session(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with session_factory() as session:
        yield session
