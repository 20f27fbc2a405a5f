"""docs/notebook.py, the worked notebook: every cell runs against PostGIS, as Jupyter runs it.

The cells (``# %%`` markers, jupytext's percent format) run one after the other in one
namespace, from a test whose event loop is running, as a Jupyter kernel's is. A failing cell
fails the test and names the cell.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import matplotlib.image
import pytest

from noctis.settings import Settings, get_settings

NOTEBOOK = Path(__file__).parents[2] / "docs" / "notebook.py"


def code_cells(source: str) -> list[str]:
    cells = re.split(r"^# %%.*$", source, flags=re.MULTILINE)
    headers = re.findall(r"^# %%(.*)$", source, flags=re.MULTILINE)
    return [
        cell for header, cell in zip(headers, cells[1:], strict=True) if "[markdown]" not in header
    ]


@pytest.fixture
def notebook_env(
    atlas_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Path]:
    assert atlas_settings.atlas_db_url is not None
    monkeypatch.setenv("ATLAS_DB_URL", atlas_settings.atlas_db_url.get_secret_value())
    monkeypatch.setenv("NOCTIS_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.delenv("NOCTIS_FINDER_PK", raising=False)
    monkeypatch.delenv("NOCTIS_DREAM_PK", raising=False)
    get_settings.cache_clear()
    backend = matplotlib.get_backend()
    yield tmp_path
    matplotlib.use(backend)
    get_settings.cache_clear()


async def test_every_cell_of_the_worked_notebook_runs(notebook_env: Path) -> None:
    assert asyncio.get_running_loop() is not None  # like a Jupyter kernel
    cells = code_cells(NOTEBOOK.read_text())
    assert len(cells) >= 8
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    for number, cell in enumerate(cells, start=1):
        code = compile(cell, f"{NOTEBOOK.name} [cell {number}]", "exec")
        try:
            exec(code, namespace)
        except Exception as e:
            pytest.fail(f"cell {number} of {NOTEBOOK} failed: {type(e).__name__}: {e}")

    png = notebook_env / "notebook-footprints.png"
    assert matplotlib.image.imread(png).shape[:2] == (600, 700)
    assert (notebook_env / "study.parquet").stat().st_size > 0
    assert (notebook_env / "study-items.json").stat().st_size > 0
    assert namespace["count"] == namespace["frame"].height > 0  # type: ignore[attr-defined]
