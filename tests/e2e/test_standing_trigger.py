"""A loader's event starts the standing matcher at once, on a real ``prefect server``.

``noctis archive load`` (the console script, as an operator runs it) emits
``noctis.archive.loaded`` after it commits; the trigger ``noctis deploy`` registered on
``standing-match/default`` creates a run of it then, not at the schedule's next tick.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from noctis.deployment import STANDING_FULL_NAME
from noctis.settings import Settings
from tests.e2e.conftest import BIN, PrefectServer
from tests.support.stac import items, write_ndjson

TRIGGERED_WITHIN = 60.0  # seconds: the trigger acts within a second or two on an idle machine


def _load(server: PrefectServer, atlas: Settings, path: Path) -> dict[str, Any]:
    assert atlas.atlas_db_url is not None
    outcome = subprocess.run(
        [str(BIN / "noctis"), "archive", "load", "--json", str(path)],
        env=server.env(ATLAS_DB_URL=atlas.atlas_db_url.get_secret_value()),
        cwd=path.parent,  # no stray .env is read
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert "Could not tell Prefect" not in outcome.stderr, outcome.stderr
    summary: dict[str, Any] = json.loads(outcome.stdout.strip().splitlines()[-1])
    return summary


def _triggered_runs(server: PrefectServer, deployment_id: str) -> list[dict[str, Any]]:
    """The matcher's runs that an automation created (the schedule's are made by the
    scheduler, with ``auto_scheduled`` set and no ``created_by``)."""
    with server.client() as api:
        response = api.post(
            "/flow_runs/filter", json={"deployments": {"id": {"any_": [deployment_id]}}}
        )
    assert response.status_code == 200, response.text
    return [
        run for run in response.json() if (run.get("created_by") or {}).get("type") == "AUTOMATION"
    ]


def test_a_load_starts_the_standing_matcher_at_once(
    prefect_server: PrefectServer,
    deployed: subprocess.CompletedProcess[str],
    atlas_settings: Settings,
    tmp_path: Path,
) -> None:
    with prefect_server.client() as api:
        deployment = api.get(f"/deployments/name/{STANDING_FULL_NAME}")
    assert deployment.status_code == 200, deployment.text
    deployment_id = deployment.json()["id"]
    assert _triggered_runs(prefect_server, deployment_id) == []

    path = write_ndjson(tmp_path / "scenes.ndjson", items(3))
    assert _load(prefect_server, atlas_settings, path)["inserted"] == 3
    deadline = time.monotonic() + TRIGGERED_WITHIN
    while not (runs := _triggered_runs(prefect_server, deployment_id)):
        assert time.monotonic() < deadline, "no standing-match run within 60 s of the load"
        time.sleep(0.5)
    assert len(runs) == 1 and runs[0]["parameters"] == {}

    # A load that changes nothing (the same items again) emits nothing.
    assert _load(prefect_server, atlas_settings, path)["unchanged"] == 3
    time.sleep(3)
    assert len(_triggered_runs(prefect_server, deployment_id)) == 1
