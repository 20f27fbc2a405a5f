"""A study holding scenes whose footprint has an Infinity or NaN coordinate, exported in every
format and read back by strict readers: such a footprint is written as a null geometry (GeoJSON
and STAC ``"geometry": null`` with no ``bbox``, a NULL WKB in GeoParquet, left out of its bbox,
an empty WKT in CSV), its row and properties kept. Before, one such scene made the whole GeoJSON
and STAC file invalid JSON (``"bbox": [178.1, 0.1, Infinity, 0.2]``), wrote ``null`` as a
coordinate, and put ``Infinity`` in the GeoParquet ``geo`` metadata."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import duckdb
import geopandas
import psycopg
import pyarrow.parquet as pq
import pytest
import shapely
from sqlalchemy.engine import make_url

from noctis.db import libpq_dsn
from noctis.exports import export_study
from noctis.frames import study_frame
from noctis.notebook import open_uow
from noctis.settings import Settings
from noctis.study import check_study, link_study
from tests.integration.test_exports import _spatial_extension
from tests.support.frames import Seeded, database_rows, seed_study
from tests.support.stac_schema import item_validator

BAD = ("bad-Infinity", "bad-NaN")


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


async def _seed(settings: Settings) -> Seeded:
    """The frames study (three matches near the antimeridian) and two non-finite scenes in its
    AOI and window, linked by the product's use case."""
    seeded = await seed_study(settings, link=False)
    with psycopg.connect(libpq_dsn(make_url(settings.atlas_url)), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) SELECT "
            "'bad-' || CASE WHEN x = 'NaN' THEN 'NaN' ELSE 'Infinity' END, 's2', "
            "ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY["
            "ST_MakePoint(178.1, 0.1), ST_MakePoint(178.4, 0.1), ST_MakePoint(x, 0.2), "
            "ST_MakePoint(178.1, 0.2), ST_MakePoint(178.1, 0.1)])), 4326), '2024-06-05T10:00Z' "
            "FROM unnest(ARRAY['Infinity', 'NaN']::float8[]) AS x"
        )
        # No CHECK keeps NaN or Infinity out of gsd: they are written as null too.
        conn.execute("UPDATE archive_item SET gsd = 'NaN' WHERE external_id = 'west'")
        conn.execute("UPDATE archive_item SET gsd = 'Infinity' WHERE external_id = 'east'")
    async with open_uow(settings) as uow:
        study = await check_study(uow, finder_id=seeded.finder_id, dream_id=seeded.dream_id)
        linked = await link_study(uow, study)
    assert linked.total == 5
    return seeded


def _export(settings: Settings, seeded: Seeded, fmt: str, path: Path) -> Path:
    result = export_study(
        seeded.finder_id, seeded.dream_id, fmt=fmt, output=path, settings=settings
    )
    assert result.rows == 5
    return path


@pytest.mark.parametrize("fmt", ["geojson", "stac"])
async def test_geojson_and_stac_stay_json_with_a_null_geometry(
    atlas_settings: Settings, tmp_path: Path, fmt: str
) -> None:
    seeded = await _seed(atlas_settings)
    path = _export(atlas_settings, seeded, fmt, tmp_path / f"study.{fmt}")
    features = _strict_json(path.read_text())["features"]
    assert [f["id"] for f in features] == ["split", "east", "west", *BAD]
    for feature in features:
        if feature["id"] in BAD:
            assert feature["geometry"] is None and "bbox" not in feature, feature
            coverage = feature["properties"].get(
                "coverage", feature["properties"].get("noctis:coverage")
            )
            assert coverage is None
        else:
            assert shapely.geometry.shape(feature["geometry"]).is_valid
    by_id = {f["id"]: f["properties"] for f in features}
    assert [by_id[n].get("gsd") for n in ("east", "west")] == [None, None]
    if fmt == "stac":
        validator = item_validator()
        for item in features:
            assert [e.message for e in validator.iter_errors(item)] == [], item["id"]


async def test_geoparquet_has_null_footprints_and_a_finite_bbox(
    atlas_settings: Settings, tmp_path: Path
) -> None:
    seeded = await _seed(atlas_settings)
    path = _export(atlas_settings, seeded, "parquet", tmp_path / "study.parquet")
    geo = _strict_json(pq.read_schema(path).metadata[b"geo"].decode())
    good = [r["footprint"] for r in database_rows(atlas_settings, seeded)[:3]]
    column = geo["columns"]["footprint"]
    assert column["bbox"] == shapely.bounds(shapely.GeometryCollection(good)).tolist()
    assert column["geometry_types"] == ["MultiPolygon", "Polygon"]
    table = pq.read_table(path)
    ids = table.column("external_id").to_pylist()
    footprints = dict(zip(ids, table.column("footprint").to_pylist(), strict=True))
    boxes = dict(zip(ids, table.column("bbox").to_pylist(), strict=True))
    for name in BAD:
        assert footprints[name] is None and boxes[name] is None
    gdf = geopandas.read_parquet(path)
    assert gdf.geometry.isna().tolist() == [False, False, False, True, True]
    (extension,) = _spatial_extension()
    with duckdb.connect() as con:
        con.execute(f"LOAD '{extension}'")
        nulls = con.execute(
            f"SELECT count(*) FILTER (WHERE footprint IS NULL) FROM read_parquet('{path}')"
        ).fetchone()
    assert nulls == (2,)


async def test_csv_and_the_frame_leave_the_footprint_empty(
    atlas_settings: Settings, tmp_path: Path
) -> None:
    seeded = await _seed(atlas_settings)
    path = _export(atlas_settings, seeded, "csv", tmp_path / "study.csv")
    with path.open(newline="") as handle:
        rows = {r["external_id"]: r for r in csv.DictReader(handle)}
    assert [rows[n]["footprint_wkt"] for n in BAD] == ["", ""]
    assert shapely.from_wkt(rows["east"]["footprint_wkt"]).is_valid
    frame = study_frame(seeded.finder_id, seeded.dream_id, settings=atlas_settings)
    by_id = dict(zip(frame["external_id"].to_list(), frame["footprint"].to_list(), strict=True))
    assert [by_id[n] for n in BAD] == [None, None]
    assert by_id["east"] is not None
