"""Optional dependencies: without the extra, the function says which one to install."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest

from noctis.errors import MissingExtra
from noctis.exports import export_study
from noctis.frames import to_geopandas
from noctis.settings import Settings


def test_to_geopandas_without_geopandas_names_the_geo_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "geopandas", None)  # import geopandas -> ImportError
    with pytest.raises(MissingExtra, match=r"needs geopandas.*pip install 'noctis\[geo\]'"):
        to_geopandas(pl.DataFrame({"footprint": []}, schema={"footprint": pl.Binary}))


@pytest.mark.parametrize(("module", "fmt"), [("connectorx", "csv"), ("pystac", "stac")])
def test_export_without_the_notebook_extra_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: str, fmt: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    settings = Settings(atlas_db_url="postgresql://u:p@127.0.0.1:1/db", _env_file=None)
    with pytest.raises(MissingExtra, match=rf"needs {module}.*noctis\[notebook\]"):
        export_study(1, 1, fmt=fmt, output=tmp_path / "out", settings=settings)
    assert list(tmp_path.iterdir()) == []
