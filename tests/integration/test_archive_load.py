"""``noctis archive load`` on a real PostGIS: insert, idempotent re-load, updates, antimeridian
footprints, bad files that write nothing, the three formats."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.errors import DatabaseError, FileNotLoaded, InvalidItems, LoaderError
from noctis.loader import LoadOptions, LoadSummary, load_files
from noctis.repositories import ArchiveRepository, MatchCriteria
from noctis.settings import Settings
from tests.support.stac import ACROSS, item, items, write_collection, write_ndjson, write_parquet


async def _load(settings: Settings, *paths: Path, **options: object) -> LoadSummary:
    return await load_files(list(paths), settings=settings, options=LoadOptions(**options))  # type: ignore[arg-type]


async def _rows(admin: psycopg.AsyncConnection) -> list[tuple[object, ...]]:
    cursor = await admin.execute(
        "SELECT external_id, collection, ST_AsText(footprint), ST_SRID(footprint), acquired_at, "
        "cloud_cover, gsd, properties, xmin::text FROM archive_item ORDER BY external_id"
    )
    return await cursor.fetchall()


def _counts(summary: LoadSummary) -> tuple[int, int, int, int, int]:
    return (summary.read, summary.inserted, summary.updated, summary.unchanged, summary.skipped)


async def test_items_are_inserted_with_every_column(
    atlas_settings: Settings, admin: psycopg.AsyncConnection, tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "items.ndjson", items(3))
    summary = await _load(atlas_settings, path)
    assert _counts(summary) == (3, 3, 0, 0, 0)
    rows = await _rows(admin)
    external_id, collection, wkt, srid, acquired_at, cloud, gsd, properties, _ = rows[0]
    assert (external_id, collection, srid, cloud, gsd) == (
        "S2A_000000",
        "sentinel-2-l2a",
        4326,
        12.5,
        10,
    )
    assert shapely.from_wkt(wkt).equals(shapely.box(2, 48, 3, 49))
    assert acquired_at.isoformat() == "2024-05-01T10:56:21.024000+00:00"  # type: ignore[attr-defined]
    assert properties == {"platform": "p0"}


async def test_a_reload_touches_nothing_and_a_changed_item_updates_its_row(
    atlas_settings: Settings, admin: psycopg.AsyncConnection, tmp_path: Path
) -> None:
    first = items(4)
    await _load(atlas_settings, write_ndjson(tmp_path / "a.ndjson", first))
    before = await _rows(admin)
    ids_before = await (await admin.execute("SELECT id FROM archive_item ORDER BY id")).fetchall()
    # A trigger counts row updates: a no-op re-load must not fire it (the standing matcher's queue).
    await admin.execute(
        "CREATE TABLE updates (n int); "
        "CREATE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO updates VALUES (1); RETURN NEW; END $$; "
        "CREATE TRIGGER counted AFTER UPDATE ON archive_item FOR EACH ROW "
        "EXECUTE FUNCTION count_update()"
    )
    again = await _load(atlas_settings, write_ndjson(tmp_path / "b.ndjson", first))
    assert _counts(again) == (4, 0, 0, 4, 0)
    assert await _rows(admin) == before  # same values, same row versions (xmin)
    assert await (await admin.execute("SELECT count(*) FROM updates")).fetchone() == (0,)

    changed = items(4)
    changed[1]["properties"]["eo:cloud_cover"] = 80.0
    changed[2]["geometry"]["coordinates"] = [[[5, 5], [6, 5], [6, 6], [5, 6], [5, 5]]]
    changed.append(item("NEW"))
    summary = await _load(atlas_settings, write_ndjson(tmp_path / "c.ndjson", changed))
    assert _counts(summary) == (5, 1, 2, 2, 0)
    assert await (await admin.execute("SELECT count(*) FROM updates")).fetchone() == (2,)
    after = {row[0]: row for row in await _rows(admin)}
    assert after["S2A_000001"][5] == 80.0
    assert shapely.from_wkt(after["S2A_000002"][2]).equals(shapely.box(5, 5, 6, 6))
    ids_after = await (await admin.execute("SELECT id FROM archive_item ORDER BY id")).fetchall()
    assert ids_after[:4] == ids_before and len(ids_after) == 5  # updated in place, never duplicated


async def test_an_antimeridian_item_is_stored_split_and_matched_from_either_side(
    atlas_settings: Settings, session: AsyncSession, admin: psycopg.AsyncConnection, tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "fiji.ndjson", [item("FIJI", coordinates=ACROSS)])
    await _load(atlas_settings, path)
    kind, parts, xmin, xmax = await (
        await admin.execute(
            "SELECT ST_GeometryType(footprint), ST_NumGeometries(footprint), ST_XMin(footprint), "
            "ST_XMax(footprint) FROM archive_item"
        )
    ).fetchone()  # type: ignore[misc]
    assert (kind, parts, xmin, xmax) == ("ST_MultiPolygon", 2, -180, 180)
    archive = ArchiveRepository(session)
    for aoi, found in [
        (shapely.box(179.5, -0.5, 179.8, 0.5), ["FIJI"]),  # east of the antimeridian
        (shapely.box(-179.8, -0.5, -179.5, 0.5), ["FIJI"]),  # west of it
        (shapely.box(0, -0.5, 1, 0.5), []),  # the long way round: not covered
    ]:
        criteria = MatchCriteria(
            finder_id=1, location=from_shape(aoi, srid=4326), start=None, end=None
        )
        assert [i.external_id for i in await archive.search(criteria)] == found


async def test_skip_invalid_loads_the_good_items(
    atlas_settings: Settings, admin: psycopg.AsyncConnection, tmp_path: Path
) -> None:
    objects = [item("A"), item("B", datetime="soon"), item("C"), {"type": "Feature"}]
    reported: list[str] = []
    path = write_ndjson(tmp_path / "items.ndjson", objects)
    summary = await _load(atlas_settings, path, skip_invalid=True, report=reported.append)
    assert _counts(summary) == (4, 2, 0, 0, 2)
    assert [r[0] for r in await _rows(admin)] == ["A", "C"]
    assert reported == [
        f'{path}:2 (id B): unparseable datetime "soon": RFC 3339 is needed',
        f"{path}:4: missing id",
    ]


@pytest.mark.parametrize("batch_size", [10, 1_000])
async def test_a_file_with_a_bad_item_writes_nothing(
    atlas_settings: Settings, admin: psycopg.AsyncConnection, tmp_path: Path, batch_size: int
) -> None:
    await _load(atlas_settings, write_ndjson(tmp_path / "old.ndjson", [item("S2A_000003")]))
    before = await _rows(admin)
    objects = items(25)
    objects[22]["properties"]["eo:cloud_cover"] = "cloudy"
    path = write_ndjson(tmp_path / "items.ndjson", objects)
    with pytest.raises(InvalidItems, match=r"nothing was written from this file") as caught:
        await _load(atlas_settings, path, batch_size=batch_size)  # two batches written, then 23
    assert caught.value.problems == [
        f'{path}:23 (id S2A_000022): eo:cloud_cover must be a number, not a string ("cloudy")'
    ]
    assert await _rows(admin) == before  # neither inserted nor updated


async def test_commit_each_batch_keeps_the_batches_before_the_bad_one(
    atlas_settings: Settings, admin: psycopg.AsyncConnection, tmp_path: Path
) -> None:
    objects = items(25)
    objects[22]["geometry"] = None
    path = write_ndjson(tmp_path / "items.ndjson", objects)
    with pytest.raises(InvalidItems, match="earlier batches are committed"):
        await _load(atlas_settings, path, batch_size=10, commit_each_batch=True)
    assert len(await _rows(admin)) == 20


async def test_a_bad_file_stops_the_load_and_the_files_before_it_stay(
    atlas_settings: Settings, admin: psycopg.AsyncConnection, tmp_path: Path
) -> None:
    good = write_ndjson(tmp_path / "good.ndjson", items(2))
    empty = tmp_path / "empty.ndjson"
    empty.write_text("")
    later = write_ndjson(tmp_path / "later.ndjson", [item("LATER")])
    with pytest.raises(LoaderError, match="the file is empty") as caught:
        await _load(atlas_settings, good, empty, later)
    assert caught.value.loaded == (str(good),)
    assert [r[0] for r in await _rows(admin)] == ["S2A_000000", "S2A_000001"]


async def test_a_database_error_names_its_file_and_the_files_before_it(
    atlas_settings: Settings, admin: psycopg.AsyncConnection, tmp_path: Path
) -> None:
    good = write_ndjson(tmp_path / "good.ndjson", items(2))
    refused = write_ndjson(tmp_path / "refused.ndjson", [item("REFUSED")])
    await admin.execute(
        "ALTER TABLE archive_item ADD CONSTRAINT ck_test_refused CHECK (external_id <> 'REFUSED')"
    )
    try:
        with pytest.raises(FileNotLoaded) as caught:
            await _load(atlas_settings, good, refused)
    finally:
        await admin.execute("ALTER TABLE archive_item DROP CONSTRAINT ck_test_refused")
    error = caught.value
    assert str(error).startswith(f"{refused}: Atlas database error while writing")
    assert "ck_test_refused" in str(error)
    assert isinstance(error.cause, DatabaseError) and error.__cause__ is error.cause
    assert error.loaded == (str(good),) and not error.retryable
    assert [r[0] for r in await _rows(admin)] == ["S2A_000000", "S2A_000001"]


async def test_ndjson_item_collection_and_geoparquet_give_the_same_rows(
    atlas_settings: Settings, admin: psycopg.AsyncConnection, tmp_path: Path
) -> None:
    objects = [*items(30), item("FIJI", coordinates=ACROSS, datetime=None,
                               start_datetime="2024-05-02T00:00:00Z")]  # fmt: skip
    ndjson = write_ndjson(tmp_path / "items.ndjson", objects)
    collection = write_collection(tmp_path / "items.json", objects)
    parquet = write_parquet(tmp_path / "items.parquet", objects)
    first = await _load(atlas_settings, ndjson, batch_size=7)
    assert _counts(first) == (31, 31, 0, 0, 0)
    rows = await _rows(admin)
    for path in (collection, parquet):
        summary = await _load(atlas_settings, path, batch_size=7)
        assert _counts(summary) == (31, 0, 0, 31, 0), path
    assert await _rows(admin) == rows
    await admin.execute("DELETE FROM archive_item")
    for path in (collection, parquet):
        assert _counts(await _load(atlas_settings, path))[:2] == (31, 31)
        await admin.execute("DELETE FROM archive_item")
