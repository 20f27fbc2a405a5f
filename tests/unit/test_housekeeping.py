"""Retention on a worker: Prefect's local results older than NOCTIS_RETENTION_HOURS go."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

from noctis.flows.housekeeping import local_result_storage, prune_local_results

HOUR = 3600


def _file(path: Path, *, age_hours: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"pickled exception")
    then = time.time() - age_hours * HOUR
    os.utime(path, (then, then))
    return path


def test_only_results_older_than_the_retention_are_deleted(tmp_path: Path) -> None:
    old = _file(tmp_path / "a" / "old", age_hours=170)
    older = _file(tmp_path / "b" / "c" / "older", age_hours=1000)
    fresh = _file(tmp_path / "fresh", age_hours=100)
    outside = _file(tmp_path.parent / f"{tmp_path.name}-outside" / "target", age_hours=1000)
    link = tmp_path / "link"
    link.symlink_to(outside)
    os.utime(link, (0, 0), follow_symlinks=False)

    assert prune_local_results(timedelta(hours=168), root=tmp_path) == 2
    assert not old.exists() and not older.exists()
    assert fresh.exists()
    assert link.is_symlink() and outside.exists()  # a link is never followed nor deleted
    assert prune_local_results(timedelta(hours=168), root=tmp_path) == 0


def test_a_missing_storage_directory_is_nothing_to_prune(tmp_path: Path) -> None:
    assert prune_local_results(timedelta(hours=1), root=tmp_path / "never-written") == 0


def test_the_storage_is_prefects_setting(tmp_path: Path) -> None:
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: tmp_path / "results"}):
        assert local_result_storage() == tmp_path / "results"
        _file(tmp_path / "results" / "x", age_hours=2)
        assert prune_local_results(timedelta(hours=1)) == 1
