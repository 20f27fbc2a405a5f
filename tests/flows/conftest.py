"""Flows run under Prefect's test harness, on a real PostGIS, against a loopback Augur stub."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.testing.utilities import prefect_test_harness

from noctis.settings import Settings, get_settings
from tests.support.augur_stub import AugurStub, augur_stub

__all__ = ["augur_stub"]


@pytest.fixture(scope="session", autouse=True)
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def study_env(
    atlas_settings: Settings, augur_stub: AugurStub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The process environment a worker would have: Atlas and Augur, read by get_settings()."""
    assert atlas_settings.atlas_db_url is not None
    env = {
        "ATLAS_DB_URL": atlas_settings.atlas_db_url.get_secret_value(),
        "NOCTIS_AUGUR_API_URL": augur_stub.url,
        "NOCTIS_AUGUR_API_TOKEN": "augur-token-for-tests",
        "NOCTIS_AUGUR_BACKOFF_BASE": "0.05",
        "NOCTIS_AUGUR_BACKOFF_MAX": "0.2",
        "NOCTIS_AUGUR_TIMEOUT": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
