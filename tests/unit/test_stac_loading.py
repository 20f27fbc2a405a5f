"""STAC items checked before anything is written: each kind of bad input, named by position.

No database: ``check_file`` reads and checks a file exactly as ``noctis archive load`` does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import shapely

from noctis.errors import InvalidItems, LoaderError, MissingExtra, NoctisError
from noctis.loader import LoadOptions, check_file
from noctis.stac_items import BadItem, parse_item
from tests.support.stac import ACROSS, item, write_collection, write_ndjson, write_parquet

Spoil = Callable[[dict[str, Any]], Any]
LONG_ID = "X" * 2000


def _set(path: str, value: Any) -> Spoil:
    """An item with ``path`` ("a.b.c") set to ``value``, or removed when ``value`` is _DROP."""

    def spoil(obj: dict[str, Any]) -> dict[str, Any]:
        *parents, last = path.split(".")
        node = obj
        for key in parents:
            node = node[key]
        if value is _DROP:
            del node[last]
        else:
            node[last] = value
        return obj

    return spoil


_DROP = object()
BOWTIE = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]

# (kind, how the second item is spoiled, what the report says)
BAD_ITEMS: list[tuple[str, Spoil, str]] = [
    ("null geometry", _set("geometry", None), "no geometry (null)"),
    ("no geometry member", _set("geometry", _DROP), "no geometry: an archive item needs"),
    ("self-intersection", _set("geometry.coordinates", BOWTIE), "invalid geometry: Self-inter"),
    ("point", _set("geometry", {"type": "Point", "coordinates": [2, 48]}), "a Point geometry"),
    (
        "line",
        _set("geometry", {"type": "LineString", "coordinates": [[2, 48], [3, 49]]}),
        "a LineString geometry: a footprint must be a Polygon or MultiPolygon",
    ),
    ("unknown geometry type", _set("geometry.type", "Circle"), "unknown geometry type 'Circle'"),
    ("empty geometry", _set("geometry.coordinates", []), "empty geometry"),
    (
        "open ring",
        _set("geometry.coordinates", [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0.5]]]),
        "a ring is not closed",
    ),
    (
        "short ring",
        _set("geometry.coordinates", [[[0, 0], [1, 0], [0, 0]]]),
        "a ring of 3 positions",
    ),
    (
        "string coordinates",
        _set("geometry.coordinates", [[["0", "0"], ["1", "0"], ["1", "1"], ["0", "0"]]]),
        "coordinates must be numbers",
    ),
    (
        "huge coordinate",
        _set("geometry.coordinates", [[[0, 0], [1e300, 0], [1, 1], [0, 0]]]),
        "longitude 1e+300 is out of range",
    ),
    (
        "latitude out of range",
        _set("geometry.coordinates", [[[0, 0], [1, 95], [1, 1], [0, 0]]]),
        "latitude 95 is out of range",
    ),
    (
        "longitude out of range",
        _set("geometry.coordinates", [[[0, 0], [-200.5, 0], [1, 1], [0, 0]]]),
        "longitude -200.5 is out of range",
    ),
    ("unparseable datetime", _set("properties.datetime", "yesterday"), "unparseable datetime"),
    ("missing datetime", _set("properties.datetime", _DROP), "missing datetime"),
    ("datetime without zone", _set("properties.datetime", "2024-05-01T10:00:00"), "no time zone"),
    ("datetime a number", _set("properties.datetime", 1714557381), "datetime must be an RFC 3339"),
    (
        "unparseable start_datetime beside datetime",
        _set("properties.start_datetime", "yesterday"),
        "unparseable start_datetime",
    ),
    (
        "end_datetime before start_datetime",
        lambda obj: _set("properties.end_datetime", "2024-04-01T00:00:00Z")(
            _set("properties.start_datetime", "2024-05-01T00:00:00Z")(obj)
        ),
        "start_datetime is after end_datetime",
    ),
    (
        "null datetime, no start",
        _set("properties.datetime", None),
        "datetime is null and there is no start_datetime",
    ),
    (
        "cloud cover a string",
        _set("properties.eo:cloud_cover", "12"),
        "eo:cloud_cover must be a number, not a string",
    ),
    ("cloud cover a boolean", _set("properties.eo:cloud_cover", True), "not a boolean"),
    (
        "cloud cover above 100",
        _set("properties.eo:cloud_cover", 150),
        "eo:cloud_cover of 150 is out of range: it must be within [0, 100]",
    ),
    ("negative gsd", _set("properties.gsd", -1), "gsd of -1 is out of range"),
    ("missing id", _set("id", _DROP), "missing id"),
    ("empty id", _set("id", "  "), "empty id"),
    ("too long id", _set("id", LONG_ID), "id of 2,000 characters: at most 1,024"),
    ("id a number", _set("id", 17), "id must be a string, not a number (17)"),
    ("id with a control character", _set("id", "a\tb"), "holds a control character"),
    ("missing collection", _set("collection", _DROP), "missing collection"),
    (
        "not a Feature",
        _set("type", "FeatureCollection"),
        "not a Feature (type 'FeatureCollection')",
    ),
    ("an array", lambda obj: [obj], "not a STAC item: a JSON array"),
    ("missing properties", _set("properties", _DROP), "missing properties"),
    ("NUL in properties", _set("properties.platform", "a\x00b"), "NUL character"),
    (
        "lone surrogate in properties",
        _set("properties.platform", "half an emoji \ud83d"),
        "not valid Unicode (a lone surrogate, U+D83D",
    ),
    (
        "boolean coordinates",
        _set("geometry.coordinates", [[[0, 0], [True, 0], [1, 1], [0, 0]]]),
        "coordinates must be numbers",
    ),
]


@pytest.mark.parametrize(
    ("spoil", "reason"), [c[1:] for c in BAD_ITEMS], ids=[c[0] for c in BAD_ITEMS]
)
def test_a_bad_item_is_named_by_line_id_and_reason(
    tmp_path: Path, spoil: Spoil, reason: str
) -> None:
    path = write_ndjson(tmp_path / "items.ndjson", [item("GOOD"), spoil(item("BAD_1")), item("OK")])
    with pytest.raises(InvalidItems) as caught:
        check_file(path)
    error = caught.value
    assert error.count == 1
    assert error.problems[0].startswith(f"{path}:2")
    assert reason in error.problems[0]
    assert f"{path}: 1 bad STAC item; nothing was written from this file" in str(error)
    assert isinstance(error, LoaderError) and isinstance(error, NoctisError)


def _lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize(
    ("second_line", "reason"),
    [
        (
            '{"type": "Feature", "id": "cut", "geometry": {"ty',
            "malformed JSON: Unterminated string",
        ),
        ("{not json}\n", "malformed JSON: Expecting property name"),
        ('{"type": "Feature", "id": "nan", "x": NaN}\n', "malformed JSON: NaN is not JSON"),
        (
            json.dumps(item("HUGE")).replace("3.0, 48.0", "1e400, 48.0") + "\n",
            "non-finite coordinate",
        ),
        (
            json.dumps(item("DEEP")).replace('"sentinel-2a"', "[" * 5000 + "]" * 5000) + "\n",
            "malformed JSON: arrays or objects nested too deeply to read",
        ),
    ],
    ids=[
        "truncated last line",
        "malformed line",
        "NaN",
        "number too large for a double",
        "nested too deeply",
    ],
)
def test_a_line_that_is_not_json_is_a_bad_item(
    tmp_path: Path, second_line: str, reason: str
) -> None:
    path = _lines(tmp_path / "items.jsonl", [json.dumps(item("GOOD")) + "\n", second_line])
    with pytest.raises(InvalidItems) as caught:
        check_file(path)
    assert caught.value.problems[0].startswith(f"{path}:2")
    assert reason in caught.value.problems[0]
    if not second_line.endswith("\n"):
        assert "truncated?" in caught.value.problems[0]


def test_duplicate_ids_in_one_file_name_both_places(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "items.ndjson", [item("A"), item("B"), item("A")])
    with pytest.raises(InvalidItems) as caught:
        check_file(path)
    assert caught.value.problems == [f"{path}:3 (id A): duplicate id: already at {path}:1"]


def test_a_collection_outside_the_allow_list(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "items.ndjson", [item("A"), item("B", collection="landsat")])
    options = LoadOptions(collections=frozenset({"sentinel-2-l2a"}))
    with pytest.raises(InvalidItems) as caught:
        check_file(path, options)
    assert caught.value.problems == [
        f"{path}:2 (id B): collection 'landsat' is not allowed (--collection: sentinel-2-l2a)"
    ]
    assert check_file(path).read == 2  # no allow-list: every collection


def test_skip_invalid_reports_each_bad_item_and_keeps_the_good(tmp_path: Path) -> None:
    negative_cloud: dict[str, Any] = {"eo:cloud_cover": -3}
    path = write_ndjson(
        tmp_path / "items.ndjson",
        [item("A"), item("B", datetime="nope"), item("C"), item("D", **negative_cloud)],
    )
    reported: list[str] = []
    result = check_file(path, LoadOptions(skip_invalid=True, report=reported.append))
    assert (result.read, result.skipped) == (4, 2)
    assert reported == result.problems
    assert [p.split(": ")[0] for p in reported] == [f"{path}:2 (id B)", f"{path}:4 (id D)"]


def test_many_bad_items_are_counted_and_the_message_stays_short(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "items.ndjson", [item(f"I{i}", datetime="x") for i in range(50)])
    with pytest.raises(InvalidItems) as caught:
        check_file(path)
    assert caught.value.count == 50
    assert len(str(caught.value).splitlines()) == 12  # the summary, 10 items, "... and 40 more"
    assert str(caught.value).endswith("... and 40 more")


def test_positions_in_an_item_collection_and_in_geoparquet(tmp_path: Path) -> None:
    over_100: dict[str, Any] = {"eo:cloud_cover": 101}
    bad = item("B", **over_100)
    collection = write_collection(tmp_path / "items.json", [item("A"), bad])
    parquet = write_parquet(tmp_path / "items.parquet", [item("A"), bad])
    for path, where in ((collection, "features[1]"), (parquet, "row 2")):
        with pytest.raises(InvalidItems) as caught:
            check_file(path)
        reason = "eo:cloud_cover of 101 is out of range: it must be within [0, 100]"
        assert caught.value.problems == [f"{path}:{where} (id B): {reason}"]


FILE_PROBLEMS: list[tuple[str, str, str]] = [
    ("empty.ndjson", "", "the file is empty: no STAC items"),
    ("blank.ndjson", "\n  \n\n", "the file holds only blank lines"),
    ("empty.json", "", "the file is empty"),
    ("cut.json", '{"type": "FeatureCollection", "features": [{"type": "Fea', "truncated?"),
    ("list.json", "[]", "not a STAC ItemCollection"),
    ("none.json", '{"type": "FeatureCollection", "features": []}', "has no features"),
    ("items.csv", "id\n", "unknown format '.csv'"),
    ("bad.parquet", "not parquet at all", "not a readable Parquet file"),
]


@pytest.mark.parametrize(
    ("name", "content", "reason"), FILE_PROBLEMS, ids=[f[0] for f in FILE_PROBLEMS]
)
def test_a_file_that_cannot_be_read_is_refused_whole(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LoaderError, match=r"^" + str(path).replace(".", r"\.") + ": ") as caught:
        check_file(path)
    assert reason in str(caught.value)
    assert not isinstance(caught.value, InvalidItems)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="cannot read it: No such file"):
        check_file(tmp_path / "nowhere.ndjson")


def test_geoparquet_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_parquet(tmp_path / "items.parquet", [item("A")])
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingExtra, match=r"needs pyarrow.*pip install 'noctis\[geoparquet\]'"):
        check_file(path)


# ------------------------------------------------------------------ the mapping --


def test_the_mapping_of_an_item_to_a_row() -> None:
    row = parse_item(item("A", start_datetime="2024-05-01T10:00:00Z", extra={"k": [1, 2]}))
    assert (row.external_id, row.collection, row.cloud_cover, row.gsd) == (
        "A", "sentinel-2-l2a", 12.5, 10.0
    )  # fmt: skip
    assert row.acquired_at.isoformat() == "2024-05-01T10:56:21.024000+00:00"
    assert json.loads(row.properties) == {
        "platform": "sentinel-2a",
        "start_datetime": "2024-05-01T10:00:00Z",
        "extra": {"k": [1, 2]},
    }
    assert row.footprint.equals(shapely.box(2, 48, 3, 49))


def test_a_null_datetime_takes_start_datetime_in_utc() -> None:
    row = parse_item(item("A", datetime=None, start_datetime="2024-05-01T12:00:00+02:00"))
    assert row.acquired_at.isoformat() == "2024-05-01T10:00:00+00:00"
    assert "start_datetime" in json.loads(row.properties)


def test_rfc3339_lowercase_t_and_z_are_read() -> None:
    lower = parse_item(item("A", datetime="2024-05-01t10:00:00.5z")).acquired_at
    assert lower == parse_item(item("A", datetime="2024-05-01T10:00:00.5Z")).acquired_at


def test_unknown_cloud_cover_and_gsd_are_null() -> None:
    unknown: dict[str, Any] = {"eo:cloud_cover": None, "gsd": None}
    row = parse_item(item("A", **unknown))
    assert (row.cloud_cover, row.gsd) == (None, None)


def test_a_footprint_across_the_antimeridian_is_split_at_180() -> None:
    row = parse_item(item("A", coordinates=ACROSS))
    parts = shapely.get_parts(row.footprint)
    assert row.footprint.geom_type == "MultiPolygon" and len(parts) == 2
    assert sorted(tuple(p.bounds) for p in parts) == [
        (-180.0, -1.0, -179.0, 1.0),
        (179.0, -1.0, 180.0, 1.0),
    ]
    assert row.footprint.is_valid


def test_a_clockwise_footprint_across_the_antimeridian_is_split_the_same() -> None:
    clockwise = [list(reversed(ACROSS[0]))]
    row = parse_item(item("A", coordinates=clockwise))
    assert row.footprint.normalize().equals(
        parse_item(item("A", coordinates=ACROSS)).footprint.normalize()
    )


@pytest.mark.parametrize("lat", [84.0, -84.0])
def test_a_polar_scene_is_its_cap_in_either_winding(lat: float) -> None:
    """A ring around a pole crosses the antimeridian; read by its winding alone, the
    clockwise one would enclose the rest of the Earth (no scene does): it is the cap."""
    ring = [[45.0, lat], [135.0, lat], [-135.0, lat], [-45.0, lat], [45.0, lat]]
    pole = shapely.Point(10.0, 89.0 if lat > 0 else -89.0)
    paris = shapely.Point(2.35, 48.85)
    for coordinates in ([ring], [ring[::-1]]):
        footprint = parse_item(item("P", coordinates=coordinates)).footprint
        assert footprint.is_valid and footprint.covers(pole), coordinates
        assert not footprint.intersects(paris), coordinates
        assert footprint.bounds[1 if lat > 0 else 3] == lat
        assert footprint.area == pytest.approx(360.0 * 6.0)


def test_a_footprint_already_split_or_on_180_is_kept() -> None:
    split = {"type": "MultiPolygon", "coordinates": [
        [[[179, 0], [180, 0], [180, 1], [179, 1], [179, 0]]],
        [[[-180, 0], [-179, 0], [-179, 1], [-180, 1], [-180, 0]]],
    ]}  # fmt: skip
    obj = item("A")
    obj["geometry"] = split
    assert parse_item(obj).footprint.equals(shapely.from_geojson(json.dumps(split)))


def test_a_height_is_dropped() -> None:
    row = parse_item(item("A", coordinates=[[[2, 48, 5], [3, 48, 5], [3, 49, 5], [2, 48, 5]]]))
    assert not row.footprint.has_z


def test_bad_item_carries_its_reason() -> None:
    with pytest.raises(BadItem) as caught:
        parse_item(item("A", gsd="ten"))
    assert caught.value.reason == 'gsd must be a number, not a string ("ten")'


def test_geoparquet_geometry_is_checked_like_geojson(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"id": "P", "collection": "c", "datetime": "2024-05-01T00:00:00Z", "geometry": g}
        for g in (
            shapely.to_wkb(shapely.Point(2, 48)),
            shapely.to_wkb(shapely.box(179, 0, 181, 1)),
            b"\x01\x02",
        )
    ]
    for i, row in enumerate(rows):
        row["id"] = f"P{i}"
    path = tmp_path / "items.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(InvalidItems) as caught:
        check_file(path)
    assert [p.split(": ", 1)[1] for p in caught.value.problems] == [
        "a Point geometry: a footprint must be a Polygon or MultiPolygon",
        "longitude 181 is out of range: [lon, lat] in EPSG:4326 need -180..180",
        caught.value.problems[2].split(": ", 1)[1],
    ]
    assert caught.value.problems[2].startswith(f"{path}:row 3 (id P2): malformed geometry (WKB)")


def test_geoparquet_nanoseconds_are_cut_to_microseconds_without_pandas(tmp_path: Path) -> None:
    """pyarrow hands nanosecond timestamps to Python only through pandas: the loader cuts them
    to microseconds first (PostgreSQL's resolution), so a file loads the same without it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from noctis.stac_files import open_source

    nanoseconds = pa.array([1714557600123456789], type=pa.timestamp("ns", tz="UTC"))
    table = pa.table(
        {
            "id": ["NS"],
            "collection": ["c"],
            "datetime": nanoseconds,
            "processed": nanoseconds,
            "geometry": [shapely.to_wkb(shapely.box(2, 48, 3, 49))],
        }
    )
    path = tmp_path / "ns.parquet"
    pq.write_table(table, path)
    (entry,) = open_source(path).entries
    assert entry.item is not None
    assert type(entry.item["properties"]["datetime"]) is datetime  # not a pandas Timestamp
    row = parse_item(entry.item)
    assert row.acquired_at == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert json.loads(row.properties)["processed"] == "2024-05-01T10:00:00.123456Z"
