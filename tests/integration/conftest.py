"""Fixtures of the integration tests that drive the CLI as a shell would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from noctis.settings import Settings, get_settings


@pytest.fixture
def env(atlas_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """ATLAS_DB_URL in the environment, read by get_settings() as in production."""
    assert atlas_settings.atlas_db_url is not None
    monkeypatch.setenv("ATLAS_DB_URL", atlas_settings.atlas_db_url.get_secret_value())
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
