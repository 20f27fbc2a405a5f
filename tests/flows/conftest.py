"""Flows run under Prefect's test harness (its server on PostgreSQL), on a real PostGIS,
against a loopback Augur: see tests/conftest.py for the fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _prefect(prefect_server: str) -> str:
    return prefect_server
