"""`noctis demo` end to end on a small archive: its own PostGIS, the real flow, the map."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
from rich.console import Console

from noctis.devtools.demo import EPHEMERAL_STARTUP_S, _flow_settings, run_demo
from noctis.errors import NoctisError
from noctis.settings import Settings


def test_demo_runs_the_study_verifies_it_and_draws_the_map(
    tmp_path: Path, prefect_server: str
) -> None:
    console = Console(record=True, width=120)
    map_path = tmp_path / "map.png"
    run_demo(size=5_000, keep=False, map_path=map_path, city="Tokyo", console=console)
    output = console.export_text()
    matched = re.search(r"Matched items\s*│\s*(\d+)", output)
    assert matched is not None and int(matched.group(1)) > 0, output
    assert "equal an independent SQL formulation of the match rule" in output
    assert map_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert map_path.stat().st_size > 10_000


def test_demo_refuses_an_unknown_city_before_starting_anything(tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    with pytest.raises(NoctisError, match="Unknown city 'Atlantis'"):
        run_demo(
            size=5_000, keep=False, map_path=tmp_path / "m.png", city="Atlantis", console=console
        )
    assert not (tmp_path / "m.png").exists()


def test_the_demo_gives_prefects_ephemeral_server_time_to_start(atlas_settings: Settings) -> None:
    """Prefect's default (20 s) was once too short for a first run on a fresh 2-core machine."""
    before = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    with _flow_settings(atlas_settings):
        inside = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    assert EPHEMERAL_STARTUP_S > 20
    assert inside == max(before, EPHEMERAL_STARTUP_S)
    assert PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value() == before
