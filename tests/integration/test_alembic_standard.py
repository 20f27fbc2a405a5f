"""pytest-alembic's standard migration tests, on a fresh, empty PostGIS database.

(pytest is pinned below 9.2, which breaks pytest-alembic 0.13.1 at collection.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL

from noctis.migrate import find_alembic_ini
from tests.conftest import _admin

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]


@pytest.fixture
def alembic_config() -> dict[str, str]:
    return {"file": str(find_alembic_ini())}


@pytest.fixture
def alembic_engine(postgis_url: URL) -> Iterator[Engine]:
    name = f"pa_{uuid.uuid4().hex[:12]}"
    with _admin(postgis_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(postgis_url.set(database=name, drivername="postgresql+psycopg"))
    try:
        yield engine
    finally:
        engine.dispose()
        with _admin(postgis_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
