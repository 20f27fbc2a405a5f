"""The reliability suite: real PostGIS, Prefect's harness, a loopback Augur (docs/reliability.md).

Every test gets a fresh migrated database (``atlas_settings`` from tests/conftest.py) and, when
it runs flows, the environment a worker would have (``study_env``): Atlas, Augur (the stub) and
a token, read by ``get_settings()`` exactly as in production.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from sqlalchemy.engine import URL

from noctis.settings import Settings, get_settings
from tests.reliability.harness import prefect_harness_on_postgres
from tests.reliability.support import AUGUR_TOKEN, admin_dsn
from tests.support.augur_stub import AugurStub, augur_stub

__all__ = ["augur_stub"]


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(postgis_url: URL) -> Iterator[str]:
    """Prefect's harness with its server on PostgreSQL (see tests/reliability/harness.py)."""
    name = f"prefect_{uuid.uuid4().hex[:8]}"
    admin = postgis_url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        database = postgis_url.set(database=name).render_as_string(hide_password=False)
        with prefect_harness_on_postgres(database) as api_url:
            yield api_url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
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
        admin_dsn(atlas_settings), autocommit=True
    ) as conn:
        yield conn
