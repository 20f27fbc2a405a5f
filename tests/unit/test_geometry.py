"""The pure geometry checks on a finder's location (no database)."""

from __future__ import annotations

import pytest
import shapely

from noctis.geometry import widest_edge, within_lon_lat


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
