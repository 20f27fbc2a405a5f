"""The finder check (noctis.finders) without a database: the window, the filters, the location
report's verdicts and the criteria handed to the repositories."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import shapely
from geoalchemy2 import WKTElement

from noctis.errors import InvalidFinder
from noctis.finders import Window, check_filters, check_location, criteria_for
from noctis.models import ImageryFinder
from noctis.repositories import FinderReport

SQUARE = "POLYGON((10 44, 11 44, 11 45, 10 45, 10 44))"


def _report(**overrides: object) -> FinderReport:
    values: dict[str, object] = {
        "geometry_type": "ST_Polygon",
        "srid": 4326,
        "is_empty": False,
        "is_valid": True,
        "invalid_reason": None,
        "area_m2": 8.8e9,
        "bounds": (10.0, 44.0, 11.0, 45.0),
        "polygon_wkb": shapely.to_wkb(shapely.from_wkt(SQUARE)),
    }
    values.update(overrides)
    return FinderReport(**values)  # type: ignore[arg-type]


def _finder(**overrides: object) -> ImageryFinder:
    values: dict[str, object] = {"id": 7, "location": WKTElement(SQUARE, srid=4326)}
    values.update(overrides)
    return ImageryFinder(**values)


# ------------------------------------------------------------------------------- the window


def test_a_window_is_whole_utc_days_with_an_exclusive_end() -> None:
    window = Window(date(2024, 1, 1), date(2024, 12, 31))
    assert window.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert window.end == datetime(2025, 1, 1, tzinfo=UTC)
    assert str(window) == "2024-01-01 .. 2024-12-31"


def test_a_single_day_window_spans_24_hours() -> None:
    window = Window(date(2024, 2, 29), date(2024, 2, 29))
    assert window.start is not None and window.end is not None
    assert (window.end - window.start).total_seconds() == 86_400


def test_null_dates_leave_the_window_open() -> None:
    window = Window(None, None)
    assert window.start is None and window.end is None
    assert str(window) == "(open) .. (open)"


def test_the_last_day_of_the_calendar_has_no_end() -> None:
    assert Window(None, date.max).end is None


# ------------------------------------------------------------------------------- the filters


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"start_date": date(2024, 5, 2), "end_date": date(2024, 5, 1)},
            "ImageryFinder 7 starts after it ends (2024-05-02 > 2024-05-01)",
        ),
        (
            {"collections": []},
            "ImageryFinder 7 has an empty collections list: set it to null to search every "
            "collection",
        ),
        (
            {"collections": ["sentinel-2-l2a", None]},
            "ImageryFinder 7 has a null among its collections, which no scene's collection "
            "equals: remove it",
        ),
        (
            {"max_cloud_cover": 150.0},
            "ImageryFinder 7 has a max_cloud_cover of 150: it must be within [0, 100]",
        ),
        (
            {"max_cloud_cover": -1.0},
            "ImageryFinder 7 has a max_cloud_cover of -1: it must be within [0, 100]",
        ),
    ],
    ids=["inverted", "empty-collections", "null-collection", "cloud-above", "cloud-below"],
)
def test_bad_filters_are_refused_with_the_reason(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidFinder) as refused:
        check_filters(_finder(**overrides))
    assert str(refused.value) == message
    assert refused.value.finder_id == 7


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"start_date": date(2024, 5, 1), "end_date": date(2024, 5, 1)},
        {"collections": ["sentinel-2-l2a"], "max_cloud_cover": 0.0},
        {"max_cloud_cover": 100.0},
    ],
)
def test_good_filters_pass(overrides: dict[str, object]) -> None:
    check_filters(_finder(**overrides))


# ------------------------------------------------------------------------------- the location


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"geometry_type": None}, "has no location"),
        ({"is_empty": True, "bounds": None}, "has an empty location"),
        (
            {"geometry_type": "ST_LineString"},
            "has a LineString location: it must be a Point, MultiPoint, Polygon or MultiPolygon",
        ),
        (
            {"is_valid": False, "invalid_reason": "Self-intersection[0.5 0.5]"},
            "has an invalid location: Self-intersection[0.5 0.5]",
        ),
        (
            {"bounds": (170.0, -10.0, 190.0, 10.0)},
            "has a location outside [-180, 180] x [-90, 90] (lon/lat, EPSG:4326): split a "
            "location that crosses the antimeridian into a MultiPolygon at ±180",
        ),
        (
            {
                "polygon_wkb": shapely.to_wkb(
                    shapely.from_wkt("POLYGON((170 -10, -170 -10, -170 10, 170 10, 170 -10))")
                )
            },
            "has an edge from longitude 170 to -170 (340° wide): a location that crosses the "
            "antimeridian must be split into a MultiPolygon at ±180, and one wider than 180° "
            "needs a vertex at least every 180° of longitude",
        ),
    ],
    ids=["none", "empty", "line", "invalid", "outside", "unsplit-antimeridian"],
)
def test_bad_locations_are_refused_with_the_reason(
    overrides: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidFinder) as refused:
        check_location(7, _report(**overrides))
    assert str(refused.value) == f"ImageryFinder 7 {reason}"


def test_the_type_is_checked_before_validity() -> None:
    """An invalid LineString is refused for its type: the fix the user needs first."""
    with pytest.raises(InvalidFinder, match="LineString location"):
        check_location(7, _report(geometry_type="ST_LineString", is_valid=False))


@pytest.mark.parametrize("geometry_type", ["ST_Point", "ST_MultiPoint", "ST_MultiPolygon"])
def test_points_and_polygons_pass(geometry_type: str) -> None:
    check_location(7, _report(geometry_type=geometry_type))


# ------------------------------------------------------------------------------- the criteria


def test_criteria_carry_the_window_the_filters_and_the_area() -> None:
    finder = _finder(
        start_date=date(2024, 1, 1),
        end_date=date(2024, 1, 31),
        max_cloud_cover=30.0,
        collections=["landsat-c2-l2", "sentinel-2-l2a"],
    )
    criteria = criteria_for(finder, _report())
    assert criteria.finder_id == 7
    assert criteria.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert criteria.end == datetime(2024, 2, 1, tzinfo=UTC)
    assert criteria.max_cloud_cover == 30.0
    assert criteria.collections == ("landsat-c2-l2", "sentinel-2-l2a")
    assert criteria.area_m2 == 8.8e9


def test_a_point_aoi_has_no_area_so_no_coverage() -> None:
    criteria = criteria_for(_finder(), _report(geometry_type="ST_Point", area_m2=None))
    assert criteria.area_m2 is None
    assert criteria.collections is None and criteria.start is None and criteria.end is None
