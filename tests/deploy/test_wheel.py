"""The distribution on its own: a wheel built from the repository, installed into a fresh
virtual environment with no source tree, migrates a PostGIS and runs a study.

The environment gets exactly the locked versions (``uv export --frozen``), so this needs no
network once uv's cache holds them (``uv sync`` filled it). The commands run from an empty
directory, with no ``.env`` and no ``NOCTIS_ALEMBIC_INI``: the migrations must come from the
wheel itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from noctis import __version__
from noctis.db import libpq_dsn
from tests.conftest import _admin, _head_revision

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv") or "uv"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv holding only the wheel and its locked dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [UV, "build", "--wheel", "--out-dir", str(work / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (work / "dist").glob("noctis-*.whl")
    requirements = work / "requirements.txt"
    subprocess.run(
        [UV, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
         "--output-file", str(requirements)],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    venv = work / "venv"
    subprocess.run(
        [UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, cwd=work
    )
    subprocess.run(
        [UV, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "-r", str(requirements), str(wheel)],
        check=True, capture_output=True, cwd=work,
    )  # fmt: skip
    return venv / "bin"


@pytest.fixture
def empty_database(postgis_url: URL) -> Iterator[URL]:
    name = f"wheel_{uuid.uuid4().hex[:8]}"
    with _admin(postgis_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgis_url.set(database=name)
    finally:
        with _admin(postgis_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(atlas: str, prefect_api: str, home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TMPDIR"}}
    return {
        **keep,
        "HOME": str(home),
        "ATLAS_DB_URL": atlas,
        "NOCTIS_AUGUR_API_URL": "",
        "PREFECT_API_URL": prefect_api,
        "PREFECT_HOME": str(home / ".prefect"),
    }


def _noctis(
    bin_dir: Path, *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "noctis"), *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def test_the_installed_package_holds_no_source_tree(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "python"), "-c", "import noctis; print(noctis.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout.strip()  # fmt: skip
    assert "site-packages" in where and not where.startswith(str(ROOT / "src"))
    version = _noctis(installed, "--version", env=_env("", "", tmp_path), cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"noctis {__version__}"


def test_db_upgrade_then_run_from_the_wheel(
    installed: Path, empty_database: URL, prefect_server: str, tmp_path: Path
) -> None:
    atlas = empty_database.render_as_string(hide_password=False)
    env = _env(atlas, prefect_server, tmp_path)
    upgraded = _noctis(installed, "db", "upgrade", env=env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    with psycopg.connect(libpq_dsn(empty_database)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            _head_revision(),
        )
        dream = conn.execute("INSERT INTO dream (name) VALUES ('w') RETURNING id").fetchone()
        finder = conn.execute(
            "INSERT INTO imagery_finder (name, location) VALUES "
            "('w', ST_MakeEnvelope(10, 44, 11, 45, 4326)) RETURNING id"
        ).fetchone()
        conn.execute(
            "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) VALUES "
            "('in', 's2', ST_MakeEnvelope(10.5, 44.5, 11.5, 45.5, 4326), '2024-05-01T10:00Z'),"
            "('out', 's2', ST_MakeEnvelope(20, 44, 21, 45, 4326), '2024-05-01T10:00Z')"
        )
    assert dream is not None and finder is not None
    ran = _noctis(
        installed, "run", "--imagery-finder-pk", str(finder[0]), "--dream-pk", str(dream[0]),
        "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert (result["matched_count"], result["new_count"]) == (1, 1)
    assert result["coverage"] == pytest.approx(0.25, abs=0.01)


def test_db_upgrade_of_an_unreachable_atlas_is_one_clear_line(
    installed: Path, tmp_path: Path
) -> None:
    env = _env("postgresql://noctis:s3cret-pw@127.0.0.1:9/augur", "", tmp_path)
    env["ATLAS_DB_CONNECT_TIMEOUT"] = "2"
    outcome = _noctis(installed, "db", "upgrade", env=env, cwd=tmp_path)
    assert outcome.returncode == 1
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith(
        "Could not migrate Atlas at postgresql+asyncpg://noctis:***@127.0.0.1:9/augur"
    )
    assert "Atlas database unavailable while migrating Atlas to head" in lines[0]
    assert "Traceback" not in outcome.stderr and "s3cret-pw" not in outcome.stderr + outcome.stdout
