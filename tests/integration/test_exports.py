"""noctis.exports: each format read back by an independent reader and compared to the database."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import geopandas
import pyarrow.parquet as pq
import pystac
import pytest
import shapely

from noctis.errors import DreamNotFound, ExportError, FinderNotFound
from noctis.exports import FORMATS, export_study
from noctis.settings import Settings
from tests.support.frames import Seeded, database_rows, parsed, same_real, seed_study
from tests.support.stac_schema import item_validator


def _export(settings: Settings, seeded: Seeded, fmt: str, path: Path, **kwargs: Any) -> Path:
    result = export_study(
        seeded.finder_id, seeded.dream_id, fmt=fmt, output=path, settings=settings, **kwargs
    )
    assert result.path == path and result.rows == 3 and result.fmt == fmt
    return path


def _assert_scalars(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["external_id"] == want["external_id"]
    assert got["collection"] == want["collection"]
    assert same_real(got["cloud_cover"], want["cloud_cover"])
    assert same_real(got["gsd"], want["gsd"])
    assert got["coverage"] == want["coverage"]


async def test_geoparquet_has_valid_geo_metadata_and_the_rows(
    atlas_settings: Settings, tmp_path: Path
) -> None:
    seeded = await seed_study(atlas_settings)
    path = _export(atlas_settings, seeded, "parquet", tmp_path / "study.parquet")
    expected = database_rows(atlas_settings, seeded)

    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["primary_column"] == "footprint"
    column = geo["columns"]["footprint"]
    assert column["encoding"] == "WKB"
    assert column["geometry_types"] == ["MultiPolygon", "Polygon"]
    assert column["crs"]["id"] == {"authority": "EPSG", "code": 4326}
    bounds = shapely.bounds(shapely.GeometryCollection([r["footprint"] for r in expected]))
    assert column["bbox"] == bounds.tolist()

    table = pq.read_table(path)  # pyarrow: the raw columns
    assert table.column("archive_item_id").to_pylist() == [r["archive_item_id"] for r in expected]
    boxes = table.column("bbox").to_pylist()
    for box, want in zip(boxes, expected, strict=True):
        assert list(box.values()) == shapely.bounds(want["footprint"]).tolist()

    gdf = geopandas.read_parquet(path)  # GeoPandas: the geometry and the CRS from `geo`
    assert gdf.crs.to_epsg() == 4326
    assert gdf.geometry.name == "footprint"
    for (_, got), want in zip(gdf.iterrows(), expected, strict=True):
        row = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in got.items()}
        _assert_scalars(row, want)
        assert got["acquired_at"].to_pydatetime() == want["acquired_at"]
        assert parsed(got["properties"]) == want["properties"]
        assert shapely.equals_exact(got["footprint"], want["footprint"], 0)


def _spatial_extension() -> list[Path]:
    """The spatial extension the duckdb-ext-spatial wheel ships (no download)."""
    folder = resources.files("duckdb_ext") / "extensions" / f"v{duckdb.__version__}"
    return list(Path(str(folder)).glob("*/spatial.duckdb_extension"))


async def test_duckdb_spatial_reads_the_geoparquet(
    atlas_settings: Settings, tmp_path: Path
) -> None:
    """DuckDB's spatial extension takes the footprint column as GEOMETRY from the `geo` metadata."""
    seeded = await seed_study(atlas_settings)
    path = _export(atlas_settings, seeded, "parquet", tmp_path / "study.parquet")
    expected = database_rows(atlas_settings, seeded)

    (extension,) = _spatial_extension()
    with duckdb.connect() as con:
        con.execute(f"LOAD '{extension}'")
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        types = {row[0]: row[1] for row in described}
        rows = con.execute(
            "SELECT archive_item_id, ST_AsWKB(footprint), ST_GeometryType(footprint)"
            f" FROM read_parquet('{path}') ORDER BY archive_item_id"
        ).fetchall()
    assert types["footprint"] == "GEOMETRY"
    assert [r[0] for r in rows] == [r["archive_item_id"] for r in expected]
    for (_, wkb, kind), want in zip(rows, expected, strict=True):
        assert shapely.equals_exact(shapely.from_wkb(bytes(wkb)), want["footprint"], 0)
        assert kind == want["footprint"].geom_type.upper()


async def test_geojson_is_an_rfc7946_feature_collection(
    atlas_settings: Settings, tmp_path: Path
) -> None:
    seeded = await seed_study(atlas_settings)
    path = _export(atlas_settings, seeded, "geojson", tmp_path / "study.geojson")
    expected = database_rows(atlas_settings, seeded)

    collection = json.loads(path.read_text())
    assert collection["type"] == "FeatureCollection"
    assert [f["id"] for f in collection["features"]] == [r["external_id"] for r in expected]
    for feature, want in zip(collection["features"], expected, strict=True):
        props = feature["properties"]
        _assert_scalars(props, want)
        assert datetime.fromisoformat(props["acquired_at"]) == want["acquired_at"]
        assert props["acquired_at"].endswith("Z")
        assert props["properties"] == want["properties"]
        geom = shapely.geometry.shape(feature["geometry"])
        assert geom.equals(want["footprint"])
        for polygon in getattr(geom, "geoms", [geom]):  # RFC 7946: exteriors counter-clockwise
            assert polygon.exterior.is_ccw
    split = next(f for f in collection["features"] if f["id"] == "split")
    assert split["geometry"]["type"] == "MultiPolygon"
    assert len(split["geometry"]["coordinates"]) == 2  # still split at the antimeridian
    assert split["bbox"] == [179.0, -1.0, -179.0, 1.0]  # RFC 7946 5.2: west > east


async def test_stac_items_are_valid_and_carry_the_rows(
    atlas_settings: Settings, tmp_path: Path
) -> None:
    seeded = await seed_study(atlas_settings)
    path = _export(atlas_settings, seeded, "stac", tmp_path / "study.json")
    expected = database_rows(atlas_settings, seeded)

    document = json.loads(path.read_text())
    assert document["type"] == "FeatureCollection"
    validator = item_validator()
    for item, want in zip(document["features"], expected, strict=True):
        errors = [e.message for e in validator.iter_errors(item)]
        assert errors == [], errors
        props = item["properties"]
        assert item["id"] == want["external_id"]
        assert item["collection"] == want["collection"]
        assert datetime.fromisoformat(props["datetime"]) == want["acquired_at"]
        assert same_real(props.get("eo:cloud_cover"), want["cloud_cover"])
        assert same_real(props.get("gsd"), want["gsd"])
        assert props["noctis:coverage"] == want["coverage"]
        assert props["noctis:archive_item_id"] == want["archive_item_id"]
        for key, value in want["properties"].items():
            assert props[key] == value
        assert shapely.geometry.shape(item["geometry"]).equals(want["footprint"])
        if "eo:cloud_cover" in props:
            assert any("/eo/" in url for url in item["stac_extensions"])
    split = next(i for i in document["features"] if i["id"] == "split")
    assert split["bbox"] == [179.0, -1.0, -179.0, 1.0]
    assert len(pystac.ItemCollection.from_file(str(path))) == 3  # and pystac reads it back


async def test_csv_has_one_row_per_item_with_wkt(atlas_settings: Settings, tmp_path: Path) -> None:
    seeded = await seed_study(atlas_settings)
    path = _export(atlas_settings, seeded, "csv", tmp_path / "study.csv")
    expected = database_rows(atlas_settings, seeded)

    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["archive_item_id"]) for r in rows] == [r["archive_item_id"] for r in expected]
    for got, want in zip(rows, expected, strict=True):
        number = {k: float(got[k]) if got[k] else None for k in ("cloud_cover", "gsd", "coverage")}
        _assert_scalars({**got, **number}, want)
        assert datetime.fromisoformat(got["acquired_at"]) == want["acquired_at"]
        assert json.loads(got["properties"]) == want["properties"]
        assert shapely.equals_exact(shapely.from_wkt(got["footprint_wkt"]), want["footprint"], 0)


# ------------------------------------------------------------------------------ bad input --


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fmt", FORMATS)
async def test_an_unknown_study_writes_nothing(
    atlas_settings: Settings, tmp_path: Path, fmt: str
) -> None:
    seeded = await seed_study(atlas_settings)
    with pytest.raises(FinderNotFound, match="ImageryFinder 999 does not exist"):
        export_study(999, seeded.dream_id, fmt=fmt, output=tmp_path / "x", settings=atlas_settings)
    with pytest.raises(DreamNotFound, match="Dream 999 does not exist"):
        export_study(seeded.finder_id, 999, fmt=fmt, output=tmp_path / "x", settings=atlas_settings)
    assert _leftovers(tmp_path) == []


async def test_a_study_without_lookup_rows_is_refused(
    atlas_settings: Settings, tmp_path: Path
) -> None:
    seeded = await seed_study(atlas_settings, link=False)
    with pytest.raises(ExportError, match=f"ImageryFinder {seeded.finder_id} for Dream "):
        _export(atlas_settings, seeded, "parquet", tmp_path / "study.parquet")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
async def test_rows_counted_but_gone_when_read_are_a_clear_error(
    atlas_settings: Settings, tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count and the stream disagree (the rows went in between: a standing batch removed
    the plan's scenes): an ExportError naming the study, no AssertionError, no file."""
    seeded = await seed_study(atlas_settings)
    monkeypatch.setattr("noctis.exports.study_batches", lambda *_: iter(()))
    with pytest.raises(ExportError, match=r"for Dream .* counted 3 lookup rows, but none"):
        _export(atlas_settings, seeded, fmt, tmp_path / "study.out")
    assert _leftovers(tmp_path) == []


async def test_an_unwritable_output_is_refused_before_reading(
    atlas_settings: Settings, tmp_path: Path
) -> None:
    seeded = await seed_study(atlas_settings)
    with pytest.raises(ExportError, match=r"Cannot write .*No such file or directory"):
        _export(atlas_settings, seeded, "csv", tmp_path / "missing" / "study.csv")
    with pytest.raises(ExportError, match="it is a directory"):
        _export(atlas_settings, seeded, "csv", tmp_path)
    assert _leftovers(tmp_path) == []


async def test_an_unknown_format_is_refused(atlas_settings: Settings, tmp_path: Path) -> None:
    seeded = await seed_study(atlas_settings)
    with pytest.raises(ExportError, match="Unknown export format 'xml'"):
        _export(atlas_settings, seeded, "xml", tmp_path / "study.xml")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_failure_while_writing_leaves_the_old_file_and_no_partial_one(
    atlas_settings: Settings, tmp_path: Path, fmt: str
) -> None:
    seeded = await seed_study(atlas_settings)
    output = tmp_path / "study.out"
    output.write_text("the previous export")

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the first batch

    with pytest.raises(KeyboardInterrupt):
        _export(atlas_settings, seeded, fmt, output, progress=interrupt)
    assert output.read_text() == "the previous export"
    assert _leftovers(tmp_path) == ["study.out"]


async def test_progress_counts_up_to_the_rows(atlas_settings: Settings, tmp_path: Path) -> None:
    seeded = await seed_study(atlas_settings)
    calls: list[tuple[int, int]] = []
    _export(
        atlas_settings,
        seeded,
        "geojson",
        tmp_path / "s.geojson",
        progress=lambda *a: calls.append(a),
    )
    assert calls[-1] == (3, 3)
