"""Pure geometry: the checks on a finder's location, the bboxes of footprints (no database)."""

from __future__ import annotations

import pytest
import shapely

from noctis.geometry import rfc7946_bbox, widest_edge, within_lon_lat


@pytest.mark.parametrize(
    ("wkt", "edge"),
    [
        ("POLYGON((170 -10, -170 -10, -170 10, 170 10, 170 -10))", (170.0, -170.0)),
        ("POLYGON((-100 0, 100 0, 100 1, -100 1, -100 0))", (-100.0, 100.0)),
        ("MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((-179 0,179 0,179 1,-179 0)))", (-179.0, 179.0)),
        ("POLYGON((0 0, 10 0, 10 10, 0 10, 0 0), (1 1, 2 1, 2 2, 1 1))", None),
        ("POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))", None),  # the world
        ("POLYGON((-180 -10, 180 -10, 180 10, -180 10, -180 -10))", None),  # a band
        ("POLYGON((-100 -5, 0 -5, 100 -5, 100 5, 0 5, -100 5, -100 -5))", None),  # densified
        ("POLYGON((-90 0, 90 0, 90 1, -90 1, -90 0))", None),  # exactly 180°: unambiguous
        (
            "MULTIPOLYGON(((170 -10, 180 -10, 180 10, 170 10, 170 -10)),"
            "((-180 -10, -170 -10, -170 10, -180 10, -180 -10)))",
            None,
        ),
    ],
    ids=[
        "antimeridian-unsplit",
        "200-degree-edge",
        "in-a-multipolygon",
        "with-a-hole",
        "world",
        "band",
        "densified-200-degrees",
        "exactly-180",
        "split-at-180",
    ],
)
def test_widest_edge(wkt: str, edge: tuple[float, float] | None) -> None:
    assert widest_edge(shapely.to_wkb(shapely.from_wkt(wkt))) == edge


@pytest.mark.parametrize(
    ("bounds", "inside"),
    [
        ((-180.0, -90.0, 180.0, 90.0), True),
        ((10.0, 44.0, 11.0, 45.0), True),
        ((-180.5, 0.0, 0.0, 1.0), False),
        ((0.0, 0.0, 190.0, 1.0), False),
        ((0.0, -91.0, 1.0, 0.0), False),
        ((0.0, 0.0, 1.0, 90.5), False),
        ((float("nan"), 0.0, 1.0, 1.0), False),
    ],
)
def test_within_lon_lat(bounds: tuple[float, float, float, float], inside: bool) -> None:
    assert within_lon_lat(bounds) is inside


@pytest.mark.parametrize(
    ("wkt", "bbox"),
    [
        ("POLYGON((10 40, 11 40, 11 41, 10 41, 10 40))", [10, 40, 11, 41]),
        (  # split at the antimeridian: west > east (RFC 7946, 5.2)
            "MULTIPOLYGON(((179 -1, 180 -1, 180 1, 179 1, 179 -1)),"
            "((-180 -1, -179 -1, -179 1, -180 1, -180 -1)))",
            [179, -1, -179, 1],
        ),
        (  # a band round the globe: no gap to cross, the plain bounds
            "POLYGON((-180 -10, 180 -10, 180 10, -180 10, -180 -10))",
            [-180, -10, 180, 10],
        ),
        (  # parts touching both seams but overlapping in longitude: the plain bounds
            "MULTIPOLYGON(((0 0, 180 0, 180 1, 0 1, 0 0)),((-180 2, 10 2, 10 3, -180 3, -180 2)))",
            [-180, 0, 180, 3],
        ),
    ],
    ids=["plain", "split", "band", "overlapping"],
)
def test_footprint_bboxes_follow_rfc7946(wkt: str, bbox: list[float]) -> None:
    assert rfc7946_bbox(shapely.from_wkt(wkt)) == bbox
