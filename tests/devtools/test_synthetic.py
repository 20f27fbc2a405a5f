"""The synthetic archive generator and AOI helpers (no database)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
import shapely

from noctis.devtools.synthetic import (
    CITIES,
    COMMERCIAL_COLLECTIONS,
    COPY_COLUMNS,
    SENTINEL_COLLECTION,
    ArchiveBatch,
    ArchiveSpec,
    box_aoi,
    city,
    city_aoi,
    country_aoi,
    generate,
    point_aoi,
    region_aoi,
)
from noctis.devtools.synthetic.geometry import KM_PER_DEGREE
from noctis.devtools.synthetic.grid import tile_grid

SIZE = 30_000
SPEC = ArchiveSpec(size=SIZE)


def _all(spec: ArchiveSpec, batch_size: int = 50_000) -> ArchiveBatch:
    return ArchiveBatch.concat(generate(spec, batch_size=batch_size))


def _digest(spec: ArchiveSpec, batch_size: int = 50_000) -> str:
    h = hashlib.sha256()
    for batch in generate(spec, batch_size=batch_size):
        h.update(batch.to_copy_text().encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def archive() -> ArchiveBatch:
    return _all(SPEC)


@pytest.fixture(scope="module")
def geoms(archive: ArchiveBatch) -> np.ndarray:
    return archive.geometries()


def _km_across(geom: shapely.Geometry) -> tuple[float, float]:
    """Width and height in km of a geometry's bounding box (not antimeridian-split)."""
    x0, y0, x1, y1 = geom.bounds
    lat = (y0 + y1) / 2
    return (
        (x1 - x0) * KM_PER_DEGREE * math.cos(math.radians(lat)),
        (y1 - y0) * KM_PER_DEGREE,
    )


# --------------------------------------------------------------------- determinism, sizes


def test_same_spec_gives_byte_identical_rows() -> None:
    spec = ArchiveSpec(size=12_345, seed=7)
    assert _digest(spec) == _digest(spec)


def test_rows_do_not_depend_on_batch_size() -> None:
    spec = ArchiveSpec(size=23_456, seed=3)
    assert _digest(spec, batch_size=50_000) == _digest(spec, batch_size=777)


def test_another_seed_gives_another_archive() -> None:
    assert _digest(ArchiveSpec(size=2_000, seed=1)) != _digest(ArchiveSpec(size=2_000, seed=2))


@pytest.mark.parametrize("size", [0, 1, 2, 9_999, 10_000, 10_001, 25_003])
def test_sizes_are_exact(size: int) -> None:
    batches = list(generate(ArchiveSpec(size=size), batch_size=4_000))
    assert sum(len(b) for b in batches) == size == len(ArchiveBatch.concat(batches))
    assert all(len(b) == 4_000 for b in batches[:-1])
    for b in batches:
        assert {len(c) for c in b._columns()} == {len(b)}


def test_the_sentinel_share_is_a_parameter() -> None:
    for share in (0.0, 0.25, 1.0):
        batch = _all(ArchiveSpec(size=3_000, sentinel_share=share))
        assert int((batch.collection == SENTINEL_COLLECTION).sum()) == round(3_000 * share)


def test_default_mix_is_sixty_forty(archive: ArchiveBatch) -> None:
    sentinel = archive.collection == SENTINEL_COLLECTION
    assert int(sentinel.sum()) == round(SIZE * 0.6)
    assert set(archive.collection[~sentinel].tolist()) == set(COMMERCIAL_COLLECTIONS)


# --------------------------------------------------------------------- footprints


def test_every_footprint_is_a_valid_polygon_or_multipolygon(geoms: np.ndarray) -> None:
    assert shapely.is_valid(geoms).all()
    assert set(shapely.get_type_id(geoms).tolist()) <= {3, 6}
    assert (shapely.get_srid(geoms) == 4326).all()
    assert not shapely.is_empty(geoms).any()


def test_footprints_are_hex_ewkb_with_srid_4326(archive: ArchiveBatch) -> None:
    # little-endian, type with the SRID flag, then SRID 4326 (E6100000)
    assert all(re.fullmatch(r"01(03|06)000020E6100000[0-9A-F]+", h) for h in archive.footprint)


def test_every_exterior_ring_is_counter_clockwise(geoms: np.ndarray) -> None:
    parts = shapely.get_parts(geoms)
    assert shapely.is_ccw(shapely.get_exterior_ring(parts)).all()
    assert (shapely.get_num_interior_rings(parts) == 0).all()


def test_antimeridian_footprints_are_split_multipolygons(geoms: np.ndarray) -> None:
    bounds = shapely.bounds(geoms)
    assert bounds[:, 0].min() >= -180.0 and bounds[:, 2].max() <= 180.0
    assert bounds[:, 1].min() >= -90.0 and bounds[:, 3].max() <= 90.0
    multi = geoms[shapely.get_type_id(geoms) == 6]
    assert len(multi) > 0, "expected antimeridian items in every archive"
    for geom in multi:
        sides = sorted(shapely.bounds(shapely.get_parts(geom)).tolist())
        assert len(sides) == 2
        (west_x0, _, west_x1, _), (east_x0, _, east_x1, _) = sides
        assert west_x0 == -180.0 and west_x1 < 0
        assert east_x1 == 180.0 and east_x0 > 0
    # No unsplit polygon wraps the long way round the world.
    single = geoms[shapely.get_type_id(geoms) == 3]
    assert (shapely.bounds(single)[:, 2] - shapely.bounds(single)[:, 0]).max() < 10.0


def test_commercial_scenes_cross_the_antimeridian_too(
    archive: ArchiveBatch, geoms: np.ndarray
) -> None:
    multi = shapely.get_type_id(geoms) == 6
    commercial = archive.collection != SENTINEL_COLLECTION
    assert (multi & commercial).any()
    assert (multi & ~commercial).any()


def test_footprints_are_about_the_right_size(archive: ArchiveBatch, geoms: np.ndarray) -> None:
    single = shapely.get_type_id(geoms) == 3
    sentinel = archive.collection == SENTINEL_COLLECTION
    for geom in geoms[single & sentinel][:: max(1, SIZE // 300)]:
        width, height = _km_across(geom)
        assert 105 < width < 120 and 105 < height < 115
    areas = []
    for geom in geoms[single & ~sentinel][:: max(1, SIZE // 300)]:
        width, height = _km_across(geom)
        assert 2.0 < width < 22.0 and 2.0 < height < 22.0
        areas.append(width * height)
    assert min(areas) > 4.0 and max(areas) < 400.0


def test_commercial_scenes_cluster_around_cities(archive: ArchiveBatch, geoms: np.ndarray) -> None:
    commercial = np.flatnonzero(archive.collection != SENTINEL_COLLECTION)[:500]
    for i in commercial:
        home = city(json.loads(archive.properties[i])["city"])
        centre = shapely.centroid(geoms[i])
        if shapely.get_type_id(geoms[i]) == 6:
            continue  # the centroid of a split footprint is meaningless
        d_lon = (centre.x - home.lon) * math.cos(math.radians(home.lat))
        assert math.hypot(d_lon, centre.y - home.lat) * KM_PER_DEGREE < 150


# --------------------------------------------------------------------- attributes


def test_acquisitions_are_aware_utc_within_the_range() -> None:
    spec = ArchiveSpec(size=5_000, start=date(2024, 2, 27), end=date(2024, 3, 2))
    batch = _all(spec)
    when = batch.acquired_at_datetimes()
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in when)
    assert min(when) >= datetime(2024, 2, 27, tzinfo=UTC)
    assert max(when) < datetime(2024, 3, 3, tzinfo=UTC)
    assert all(s.endswith("Z") for s in batch.acquired_at)


def test_default_range_is_2019_to_2025(archive: ArchiveBatch) -> None:
    when = archive.acquired_at_datetimes()
    assert min(when) >= datetime(2019, 1, 1, tzinfo=UTC)
    assert max(when) < datetime(2026, 1, 1, tzinfo=UTC)
    assert max(when) - min(when) > timedelta(days=6 * 365)


def test_rows_come_in_acquisition_order(archive: ArchiveBatch) -> None:
    when = archive.acquired_at_datetimes()
    assert when == sorted(when)


def test_external_ids_are_unique_and_readable(archive: ArchiveBatch) -> None:
    ids = archive.external_id.tolist()
    assert len(set(ids)) == len(ids)
    pattern = re.compile(r"S2_T\d{6}_\d{8}|(SKY|WV3|SPOT)_[A-Z0-9-]+_\d{8}")
    assert all(pattern.fullmatch(i) for i in ids)
    for i, (ext, when) in enumerate(zip(ids, archive.acquired_at_datetimes(), strict=True)):
        if ext.startswith("S2_"):
            assert ext.endswith(when.strftime("%Y%m%d")), i


def test_cloud_cover_gsd_and_properties(archive: ArchiveBatch) -> None:
    cloud = archive.cloud_cover
    known = cloud[~np.isnan(cloud)]
    assert known.min() >= 0.0 and known.max() <= 100.0
    assert 0.01 < np.isnan(cloud).mean() < 0.03
    sentinel = archive.collection == SENTINEL_COLLECTION
    assert (archive.gsd[sentinel] == 10.0).all()
    assert archive.gsd[~sentinel].min() >= 0.3 and archive.gsd[~sentinel].max() <= 3.0
    for i in range(0, SIZE, 97):
        props = json.loads(archive.properties[i])
        assert isinstance(props["platform"], str)
        assert ("tile" in props) == bool(sentinel[i])
        assert ("city" in props) != bool(sentinel[i])


def test_rows_and_copy_text(archive: ArchiveBatch) -> None:
    part = archive.slice(0, 2_000)
    rows = list(part.rows())
    assert len(rows) == 2_000 and all(len(r) == len(COPY_COLUMNS) for r in rows)
    lines = part.to_copy_text().splitlines()
    assert len(lines) == 2_000
    for row, line in zip(rows, lines, strict=True):
        fields = line.split("\t")
        assert len(fields) == len(COPY_COLUMNS)
        assert fields[0] == row[0] and fields[2] == row[2] and fields[6] == row[6]
        assert (fields[4] == "\\N") == (row[4] is None)
        if row[4] is not None:
            assert np.float32(fields[4]) == np.float32(row[4])


def test_copy_text_escapes_backslashes() -> None:
    one = ArchiveBatch(
        external_id=np.array(["a\\b\tc"], dtype=object),
        collection=np.array(["x"], dtype=object),
        footprint=np.array(["00"], dtype=object),
        acquired_at=np.array(["2020-01-01T00:00:00.000Z"], dtype=object),
        cloud_cover=np.array([np.nan], dtype=np.float32),
        gsd=np.array([1.5], dtype=np.float32),
        properties=np.array(['{"k": "\\u00e9"}'], dtype=object),
    )
    assert one.to_copy_text() == (
        'a\\\\b\\tc\tx\t00\t2020-01-01T00:00:00.000Z\t\\N\t1.5\t{"k": "\\\\u00e9"}\n'
    )


# --------------------------------------------------------------------- Sentinel tiles


def _visits(batch: ArchiveBatch) -> dict[str, list[datetime]]:
    by_tile: dict[str, list[datetime]] = defaultdict(list)
    when = batch.acquired_at_datetimes()
    for i in np.flatnonzero(batch.collection == SENTINEL_COLLECTION).tolist():
        by_tile[json.loads(batch.properties[i])["tile"]].append(when[i])
    return by_tile


def test_each_tile_is_revisited_every_five_days(archive: ArchiveBatch) -> None:
    by_tile = _visits(archive)
    for visits in by_tile.values():
        ordered = sorted(visits)
        gaps = [b - a for a, b in itertools.pairwise(ordered)]
        assert gaps and all(abs(g - timedelta(days=5)) < timedelta(minutes=30) for g in gaps)


def test_a_finite_archive_holds_fewer_tiles_not_sparser_revisits(archive: ArchiveBatch) -> None:
    by_tile = _visits(archive)
    full = (date(2025, 12, 31) - date(2019, 1, 1)).days // 5  # 511 or 512 visits
    counts = sorted(len(v) for v in by_tile.values())
    assert len(by_tile) == math.ceil(SIZE * 0.6 / full) or len(by_tile) == math.ceil(
        SIZE * 0.6 / (full + 1)
    )
    assert all(c in (full, full + 1) for c in counts[1:])  # one tile may stop early


def test_sentinel_tiles_start_near_cities() -> None:
    grid = tile_grid()
    batch = _all(ArchiveSpec(size=60_000))
    tiles = set(_visits(batch))
    # ~70 tiles, 80% of them a city's nearest: most tiles hold a city.
    codes = grid.code.tolist()
    nearest_of_a_city = {codes[i] for i in np.flatnonzero(grid.city_rank == 0).tolist()}
    assert len(tiles & nearest_of_a_city) >= 0.6 * len(tiles)


def test_sentinel_tile_time_of_day_follows_longitude(
    archive: ArchiveBatch, geoms: np.ndarray
) -> None:
    when = archive.acquired_at_datetimes()
    for i in np.flatnonzero(archive.collection == SENTINEL_COLLECTION)[::500].tolist():
        geom = geoms[i]
        lon = 180.0 if shapely.get_type_id(geom) == 6 else shapely.centroid(geom).x
        solar = (when[i].hour + when[i].minute / 60 + lon / 15) % 24
        assert abs(solar - 10.5) < 0.5, (archive.external_id[i], solar)


# --------------------------------------------------------------------- spec


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": -1},
        {"size": 10, "seed": -1},
        {"size": 10, "start": date(2020, 1, 2), "end": date(2020, 1, 1)},
        {"size": 10, "sentinel_share": 1.5},
        {"size": 10, "revisit_days": 0},
        {"size": 10, "start": datetime(2020, 1, 1, tzinfo=UTC)},
    ],
)
def test_bad_specs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        ArchiveSpec(**kwargs)  # type: ignore[arg-type]


def test_more_sentinel_items_than_the_grid_holds_is_refused() -> None:
    spec = ArchiveSpec(size=200_000, start=date(2024, 1, 1), end=date(2024, 1, 1), sentinel_share=1)
    with pytest.raises(ValueError, match="Sentinel items"):
        next(generate(spec))


def test_bad_batch_size_is_refused() -> None:
    with pytest.raises(ValueError):
        next(generate(SPEC, batch_size=0))


# --------------------------------------------------------------------- cities and AOIs


def test_cities() -> None:
    assert 200 <= len(CITIES) <= 260
    assert len({c.code for c in CITIES}) == len(CITIES)
    for c in CITIES:
        assert c.name.isascii() and "\\" not in c.name and '"' not in c.name
        assert -180 <= c.lon <= 180 and -90 < c.lat < 90
        assert re.fullmatch(r"[A-Z]{2}", c.country)
    for name in ("Suva", "Apia", "Nuku'alofa", "Anadyr", "Petropavlovsk-Kamchatsky"):
        assert city(name).name == name
    assert city("nuku'alofa") is city("NUKUALOFA")
    assert city("Petropavlovsk-Kamchatsky").code == "PETROPAVLOVSK-KAMCHATSKY"
    with pytest.raises(KeyError, match="Atlantis"):
        city("Atlantis")


def test_point_aoi() -> None:
    point = point_aoi("Paris")
    assert point.geom_type == "Point" and shapely.get_srid(point) == 4326
    assert (point.x, point.y) == (city("Paris").lon, city("Paris").lat)


@pytest.mark.parametrize(("helper", "km"), [(city_aoi, 20.0), (region_aoi, 250.0)])
def test_city_and_region_aois(helper: object, km: float) -> None:
    for name in ("Paris", "Singapore", "Reykjavik", "Ushuaia"):
        aoi = helper(name)  # type: ignore[operator]
        assert aoi.is_valid and aoi.geom_type == "Polygon" and shapely.get_srid(aoi) == 4326
        assert shapely.is_ccw(aoi.exterior)
        assert aoi.contains(point_aoi(name))
        width, height = _km_across(aoi)
        assert width == pytest.approx(km, rel=0.02) and height == pytest.approx(km, rel=0.02)


def test_aois_across_the_antimeridian_are_split() -> None:
    aoi = region_aoi("Somosomo")
    assert aoi.is_valid and aoi.geom_type == "MultiPolygon"
    x0, _, x1, _ = aoi.bounds
    assert x0 == -180.0 and x1 == 180.0
    assert aoi.intersects(city_aoi("Labasa"))
    small = box_aoi(179.99, 0.0, km=10)
    assert small.geom_type == "MultiPolygon" and small.is_valid
    assert small.area == pytest.approx(box_aoi(0.0, 0.0, km=10).area)


def test_country_aoi_is_a_valid_irregular_polygon() -> None:
    for seed, (lon, lat) in enumerate([(10.0, 47.0), (-60.0, -10.0), (100.0, 62.0)]):
        aoi = country_aoi(lon, lat, seed=seed)
        assert aoi.geom_type == "Polygon" and aoi.is_valid and aoi.exterior.is_simple
        assert shapely.is_ccw(aoi.exterior) and shapely.get_srid(aoi) == 4326
        assert len(aoi.exterior.coords) == 501  # 500 vertices, closed
        width, height = _km_across(aoi)
        assert 700 < width < 1400 and 700 < height < 1400
        assert aoi.area < 0.95 * shapely.convex_hull(aoi).area  # irregular, not convex
    assert country_aoi(10.0, 47.0, seed=1).equals_exact(country_aoi(10.0, 47.0, seed=1), 0)
    assert not country_aoi(10.0, 47.0, seed=1).equals(country_aoi(10.0, 47.0, seed=2))
    assert len(country_aoi(10.0, 47.0, vertices=50).exterior.coords) == 51


def test_country_aoi_across_the_antimeridian() -> None:
    aoi = country_aoi(178.0, -17.0, km=1000)
    assert aoi.geom_type == "MultiPolygon" and aoi.is_valid
    x0, _, x1, _ = aoi.bounds
    assert x0 == -180.0 and x1 == 180.0
    assert all(shapely.is_ccw(p.exterior) for p in aoi.geoms)


def test_aoi_helpers_refuse_the_poles() -> None:
    with pytest.raises(ValueError, match="pole"):
        country_aoi(0.0, 88.0)
    with pytest.raises(ValueError, match="pole"):
        box_aoi(0.0, -89.9, km=100)
