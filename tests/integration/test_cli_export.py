"""`noctis export`: each format written, bad input refused in one line with exit code 1.

Sync tests, as a shell runs the command: no event loop is running.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from noctis.cli import ExportFormat, app
from noctis.exports import FORMATS
from noctis.settings import Settings
from tests.support.frames import Seeded, seed_study

runner = CliRunner()


def _export(seeded: Seeded, fmt: str, output: Path, *, finder: int | None = None) -> Result:
    return runner.invoke(
        app,
        [
            *("export", "--imagery-finder-pk", str(finder or seeded.finder_id)),
            *("--dream-pk", str(seeded.dream_id), "--format", fmt, "--output", str(output)),
        ],
    )


def test_the_cli_offers_the_formats_the_exporter_writes() -> None:
    assert tuple(f.value for f in ExportFormat) == FORMATS


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_writes_each_format(env: Settings, tmp_path: Path, fmt: str) -> None:
    seeded = asyncio.run(seed_study(env))
    output = tmp_path / f"study.{fmt}"
    outcome = _export(seeded, fmt, output)
    assert outcome.exit_code == 0, outcome.output
    assert f"Wrote 3 rows of ImageryFinder {seeded.finder_id}" in outcome.output
    assert output.stat().st_size > 0
    if fmt in ("geojson", "stac"):
        assert len(json.loads(output.read_text())["features"]) == 3


def test_an_unknown_finder_exits_1_with_one_line(env: Settings, tmp_path: Path) -> None:
    seeded = asyncio.run(seed_study(env))
    outcome = _export(seeded, "csv", tmp_path / "x.csv", finder=999)
    assert outcome.exit_code == 1
    assert outcome.output.strip() == "Export failed: ImageryFinder 999 does not exist"
    assert list(tmp_path.iterdir()) == []


def test_a_study_without_rows_exits_1(env: Settings, tmp_path: Path) -> None:
    seeded = asyncio.run(seed_study(env, link=False))
    outcome = _export(seeded, "parquet", tmp_path / "x.parquet")
    assert outcome.exit_code == 1
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1 and "has no lookup rows: nothing to export" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_output_exits_1(env: Settings, tmp_path: Path) -> None:
    seeded = asyncio.run(seed_study(env))
    outcome = _export(seeded, "csv", tmp_path / "no-such-dir" / "x.csv")
    assert outcome.exit_code == 1
    assert "Export failed: Cannot write" in outcome.output


def test_an_unknown_format_is_a_usage_error(env: Settings, tmp_path: Path) -> None:
    seeded = asyncio.run(seed_study(env))
    outcome = _export(seeded, "xml", tmp_path / "x.xml")
    assert outcome.exit_code == 2
    assert "'xml' is not one of" in outcome.output
    assert list(tmp_path.iterdir()) == []
