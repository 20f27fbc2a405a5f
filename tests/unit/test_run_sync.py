"""noctis.notebook.run_sync keeps the caller's settings inside a running loop (Jupyter)."""

from __future__ import annotations

from noctis.notebook import run_sync
from noctis.settings import Settings, get_settings, use_settings


async def _host() -> str | None:
    return get_settings().atlas_db_host


def test_use_settings_reaches_a_coroutine_run_from_a_running_loop() -> None:
    chosen = Settings(atlas_db_host="my-notebook-db", noctis_augur_api_url="", _env_file=None)

    async def cell() -> str | None:  # a notebook cell: a loop is running
        return run_sync(_host())

    with use_settings(chosen):
        assert run_sync(_host()) == "my-notebook-db"  # no loop: asyncio.run here
        assert run_sync(cell()) == "my-notebook-db"  # a loop: another thread
