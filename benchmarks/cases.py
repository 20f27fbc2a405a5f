"""The benchmark cases: an AOI (point, city, region, country) x a date range.

Every AOI is centred on Munich, the busiest European city of the synthetic
archive (the most commercial scenes around it, and Sentinel-2 tiles taken near
it first), so the cases hold real numbers of matches at every archive size. The
country is an irregular 500-vertex polygon ~1,000 km across (central Europe).
Date ranges end on 2024-12-31, inside the archive (2019-2025).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

import shapely
from shapely.geometry.base import BaseGeometry

from noctis.devtools.synthetic import City, city, city_aoi, country_aoi, point_aoi, region_aoi

PLACE: Final[City] = city("Munich")

AOI_NAMES: Final = ("point", "city", "region", "country")
WINDOW_NAMES: Final = ("1 month", "1 year", "5 years")

WINDOWS: Final[dict[str, tuple[date, date]]] = {
    "1 month": (date(2024, 6, 1), date(2024, 6, 30)),
    "1 year": (date(2024, 1, 1), date(2024, 12, 31)),
    "5 years": (date(2020, 1, 1), date(2024, 12, 31)),
}

AOI_DESCRIPTIONS: Final[dict[str, str]] = {
    "point": f"the centre of {PLACE.name} (Point)",
    "city": f"a 20 km square on {PLACE.name} (Polygon, 5 vertices)",
    "region": f"a 250 km square on {PLACE.name} (Polygon, 5 vertices)",
    "country": f"an irregular ~1,000 km polygon of 500 vertices centred on {PLACE.name}",
}


def aoi(name: str) -> BaseGeometry:
    """The AOI called ``name`` (SRID 4326)."""
    if name == "point":
        return point_aoi(PLACE)
    if name == "city":
        return city_aoi(PLACE, km=20)
    if name == "region":
        return region_aoi(PLACE, km=250)
    if name == "country":
        return country_aoi(PLACE.lon, PLACE.lat, km=1000, vertices=500)
    raise KeyError(f"unknown AOI {name!r}; one of {', '.join(AOI_NAMES)}")


def aoi_ewkb(name: str) -> bytes:
    return bytes(shapely.to_wkb(aoi(name), include_srid=True))


@dataclass(frozen=True, slots=True, order=True)
class Case:
    aoi: str
    window: str

    @property
    def key(self) -> str:
        return f"{self.aoi}/{self.window}"

    @property
    def start(self) -> date:
        return WINDOWS[self.window][0]

    @property
    def end(self) -> date:
        return WINDOWS[self.window][1]

    @property
    def polygonal(self) -> bool:
        return self.aoi != "point"

    @staticmethod
    def parse(key: str) -> Case:
        aoi_name, _, window = key.partition("/")
        if aoi_name not in AOI_NAMES or window not in WINDOWS:
            raise ValueError(
                f"bad case {key!r}: expected <aoi>/<window> with aoi in {AOI_NAMES} "
                f"and window in {WINDOW_NAMES}"
            )
        return Case(aoi_name, window)


ALL_CASES: Final = tuple(Case(a, w) for a in AOI_NAMES for w in WINDOW_NAMES)
SCALING_CASE: Final = Case("city", "1 year")
QUICK_CASES: Final = (Case("point", "1 year"), SCALING_CASE, Case("country", "5 years"))
PLAN_CASES: Final = (Case("point", "5 years"), Case("country", "5 years"))
"""The cases of the plan-strategy comparison (the issue's worry: a point and a country)."""
INDEX_CASES: Final = (Case("point", "5 years"), SCALING_CASE, Case("country", "5 years"))
