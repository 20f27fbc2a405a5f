"""Keeping a worker's disk bounded: Prefect's local results of Noctis' runs.

Prefect writes the exception of every failed flow run (pickled) under its local result storage
(``PREFECT_RESULTS_LOCAL_STORAGE_PATH``, ``~/.prefect/storage`` by default) on the worker that
ran it, whatever the flow's ``persist_result``, and never deletes it. Noctis' flows persist no
other result. Every run of a Noctis flow deletes, on the machine it runs on, the files there
older than ``NOCTIS_RETENTION_HOURS``, so a worker keeps at most a retention period's worth.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from pathlib import Path

from prefect.settings import get_current_settings

logger = logging.getLogger(__name__)


def local_result_storage() -> Path:
    return Path(get_current_settings().results.local_storage_path).expanduser()


def prune_local_results(older_than: timedelta, *, root: Path | None = None) -> int:
    """Delete the regular files under ``root`` (Prefect's local result storage) last written
    more than ``older_than`` ago; returns how many. Never raises: this is housekeeping."""
    root = root or local_result_storage()
    cutoff = time.time() - older_than.total_seconds()
    removed = 0
    try:
        for directory, _, files in os.walk(root):
            for name in files:
                path = Path(directory, name)
                try:
                    if not path.is_symlink() and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except OSError:
                    continue  # deleted meanwhile by another run, or not ours to delete
    except OSError as e:  # pragma: no cover - os.walk reports errors through onerror
        logger.warning("Could not prune Prefect's local results under %s: %s", root, e)
    if removed:
        logger.info("Deleted %d of Prefect's local results older than %s", removed, older_than)
    return removed
