"""Shared fixtures, for every layer of the suite.

- ``postgis_url``: a real PostGIS (tests/support/postgis.py); never skipped.
- ``template_url`` / ``atlas_settings``: one migrated template database, and a fresh clone of
  it for every test that asks (dropped afterwards).
- ``prefect_server``: Prefect's test harness with its server on PostgreSQL (one per session,
  started only when a test needs it; tests/support/prefect_harness.py).
- ``augur_stub``: a loopback Augur (tests/support/augur_stub.py).
- ``study_env``: the environment a worker has (Atlas, Augur, a token), read by
  ``get_settings()`` exactly as in production.
- ``admin``: a superuser connection to the test's database, for faults and checks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from noctis import migrate
from noctis.db import libpq_dsn, make_engine, make_session_factory
from noctis.settings import Settings, get_settings
from tests.support import postgis
from tests.support.augur_stub import AugurStub, augur_stub
from tests.support.prefect_harness import prefect_harness_on_postgres
from tests.support.studies import AUGUR_TOKEN

__all__ = ["augur_stub"]

TEMPLATE = "noctis_template"


def _settings_for(url: URL) -> Settings:
    return Settings(
        atlas_db_url=url.render_as_string(hide_password=False),
        noctis_augur_api_url="",
        _env_file=None,
    )


def _head_revision() -> str:
    """The migrations' single head, as ``db upgrade`` leaves ``alembic_version`` (never a
    hard-coded revision: branches add revisions and the head moves)."""
    config = migrate.alembic_config(Settings(_env_file=None))
    (head,) = ScriptDirectory.from_config(config).get_heads()
    return str(head)


def _admin(url: URL) -> psycopg.Connection:
    return psycopg.connect(libpq_dsn(url), autocommit=True)


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


@pytest.fixture(scope="session")
def prefect_server(postgis_url: URL) -> Iterator[str]:
    """Prefect's harness with its server on PostgreSQL; yields the API URL.

    PostgreSQL rather than the harness' SQLite: SQLite answers concurrent writes with HTTP 503
    ("database is locked"), and production runs Prefect on PostgreSQL (compose.yml).
    """
    name = f"prefect_{uuid.uuid4().hex[:8]}"
    with _admin(postgis_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        database = postgis_url.set(database=name).render_as_string(hide_password=False)
        # generous, as the e2e bounds: a busy 2-core machine starts Prefect's server slowly
        with prefect_harness_on_postgres(database, startup_timeout=300) as api_url:
            yield api_url
    finally:
        with _admin(postgis_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def study_env(
    atlas_settings: Settings, augur_stub: AugurStub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The process environment of a worker: Atlas, Augur (fast retries), read by get_settings()."""
    assert atlas_settings.atlas_db_url is not None
    env = {
        "ATLAS_DB_URL": atlas_settings.atlas_db_url.get_secret_value(),
        "NOCTIS_AUGUR_API_URL": augur_stub.url,
        "NOCTIS_AUGUR_API_TOKEN": AUGUR_TOKEN,
        "NOCTIS_AUGUR_BACKOFF_BASE": "0.05",
        "NOCTIS_AUGUR_BACKOFF_MAX": "0.2",
        "NOCTIS_AUGUR_TIMEOUT": "2",
        "NOCTIS_AUGUR_CONNECT_TIMEOUT": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
async def admin(atlas_settings: Settings) -> AsyncIterator[psycopg.AsyncConnection]:
    """A superuser connection (autocommit) to the test's database, for faults and checks."""
    async with await psycopg.AsyncConnection.connect(
        libpq_dsn(atlas_settings.atlas_url), autocommit=True
    ) as conn:
        yield conn
