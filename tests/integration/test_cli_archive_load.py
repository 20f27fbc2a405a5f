"""``noctis archive load`` as a shell runs it: a summary, ``--json``, bad input in a few lines
with exit code 1 and no traceback. Sync tests: no event loop is running, as in a shell."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from typer.testing import CliRunner

from noctis.cli import app
from noctis.db import libpq_dsn
from noctis.settings import Settings
from tests.support.stac import item, items, write_collection, write_ndjson

runner = CliRunner()


def _count(settings: Settings) -> int:
    with psycopg.connect(libpq_dsn(settings.atlas_url)) as conn:
        return int(conn.execute("SELECT count(*) FROM archive_item").fetchone()[0])  # type: ignore[index]


def test_load_prints_a_summary_and_json_for_scripts(env: Settings, tmp_path: Path) -> None:
    ndjson = write_ndjson(tmp_path / "a.ndjson", items(3))
    collection = write_collection(tmp_path / "b.json", [item("B1"), item("B2")])
    outcome = runner.invoke(app, ["archive", "load", str(ndjson), str(collection)])
    assert outcome.exit_code == 0, outcome.output
    assert "Scenes loaded into the archive" in outcome.output and "total" in outcome.output
    again = runner.invoke(app, ["archive", "load", "--json", str(ndjson), str(collection)])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert {k: summary[k] for k in ("read", "inserted", "updated", "unchanged", "skipped")} == {
        "read": 5, "inserted": 0, "updated": 0, "unchanged": 5, "skipped": 0
    }  # fmt: skip
    assert [f["path"] for f in summary["files"]] == [str(ndjson), str(collection)]
    assert summary["seconds"] >= 0
    assert _count(env) == 5


def test_bad_items_exit_1_in_a_few_lines_and_write_nothing(env: Settings, tmp_path: Path) -> None:
    objects = [item("A"), item("B", geometry=None), item("C", datetime="tomorrow")]
    objects[1]["geometry"] = None
    path = write_ndjson(tmp_path / "items.ndjson", objects)
    outcome = runner.invoke(app, ["archive", "load", str(path)])
    assert outcome.exit_code == 1
    lines = outcome.output.strip().splitlines()
    assert lines[0].startswith(f"Load failed: {path}: 2 bad STAC items; nothing was written")
    assert lines[1:] == [
        f"  {path}:2 (id B): no geometry (null): an archive item needs a footprint",
        f'  {path}:3 (id C): unparseable datetime "tomorrow": RFC 3339 is needed',
    ]
    assert "Traceback" not in outcome.output
    assert _count(env) == 0


def test_skip_invalid_and_the_collection_allow_list(env: Settings, tmp_path: Path) -> None:
    objects = [item("A"), item("L", collection="landsat-c2-l2"), item("B")]
    path = write_ndjson(tmp_path / "items.ndjson", objects)
    outcome = runner.invoke(
        app,
        [
            "archive",
            "load",
            "--collection",
            "sentinel-2-l2a",
            "--skip-invalid",
            "--json",
            str(path),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    assert f"skipped {path}:2 (id L): collection 'landsat-c2-l2' is not allowed" in outcome.output
    assert json.loads(outcome.stdout)["skipped"] == 1
    assert _count(env) == 2


def test_check_writes_nothing(env: Settings, tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "items.ndjson", items(4))
    outcome = runner.invoke(app, ["archive", "load", "--check", "--json", str(path)])
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["read"] == 4
    assert _count(env) == 0


def test_a_file_that_cannot_be_read_names_what_was_loaded_before(
    env: Settings, tmp_path: Path
) -> None:
    good = write_ndjson(tmp_path / "good.ndjson", items(2))
    outcome = runner.invoke(app, ["archive", "load", str(good), str(tmp_path / "missing.ndjson")])
    assert outcome.exit_code == 1
    assert outcome.output.strip().splitlines() == [
        f"Load failed: {tmp_path / 'missing.ndjson'}: cannot read it: No such file or directory",
        f"Loaded before it (committed): {good}",
    ]
    assert _count(env) == 2
