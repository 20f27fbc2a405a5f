"""The cases both stores answer, and the body of ``pgstac.search()`` each one becomes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any, Final

import shapely
from shapely.geometry.base import BaseGeometry

from benchmarks.cases import ALL_CASES, Case, aoi
from noctis.devtools.synthetic import box_aoi

MATCH: Final = "Noctis match"
LINK: Final = "Noctis link"
PGSTAC: Final = "pgstac"
NOHYDRATE: Final = "pgstac nohydrate"
APPROACHES: Final = (MATCH, LINK, PGSTAC, NOHYDRATE)
SEARCHES: Final = {PGSTAC: False, NOHYDRATE: True}
"""The pgstac modes, and whether each sets ``conf.nohydrate``."""
SEARCH_SETS: Final = {"all": (PGSTAC, NOHYDRATE), "nohydrate": (NOHYDRATE,)}
"""``--searches``: the pgstac modes a run times, compares and takes apart. ``nohydrate`` skips
the default mode, which builds every matched item's JSON hydrated (about an hour at 5M)."""


def searches_run(searches: tuple[str, ...]) -> tuple[str, ...]:
    """``searches`` in :data:`SEARCHES`' order; a ValueError unless they are some of its modes,
    nohydrate among them (the targets are against it)."""
    if NOHYDRATE not in searches or not set(searches) <= SEARCHES.keys():
        raise ValueError(f"searches {searches!r}: some of {tuple(SEARCHES)}, nohydrate among them")
    return tuple(mode for mode in SEARCHES if mode in searches)


def search_set(modes: tuple[str, ...]) -> str:
    """The ``--searches`` value that runs ``modes``."""
    for name, these in SEARCH_SETS.items():
        if tuple(modes) == these:
            return name
    raise ValueError(f"no --searches runs {modes!r}")


CLOUD_CASE: Final = Case("region", "1 year")
CLOUD_MAX: Final = 20.0
ANTIMERIDIAN_KM: Final = 150.0
ONE_MICROSECOND: Final = timedelta(microseconds=1)
DATETIME_FORMS: Final = ("inclusive end", "bare dates")
"""The other spellings of the window checked (untimed) against Noctis' ids."""
EXPLAINED: Final = Case("country", "5 years")
"""The search taken apart: the most matches."""
NESTED_MIN_MS: Final = 1.0
"""auto_explain logs the nested statements of the taken-apart search that take at least this."""


@dataclass(frozen=True)
class Query:
    """A case of :mod:`benchmarks.cases` (or an AOI of its own), with a cloud-cover maximum or
    none."""

    case: Case
    max_cloud: float | None = None
    shape: BaseGeometry | None = None
    """The AOI when it is not one of :mod:`benchmarks.cases`' (``case.aoi`` names it)."""

    @property
    def geometry(self) -> BaseGeometry:
        return self.shape if self.shape is not None else aoi(self.case.aoi)

    @property
    def ewkb(self) -> bytes:
        return bytes(shapely.to_wkb(self.geometry, include_srid=True))

    @property
    def key(self) -> str:
        return self.case.key + ("" if self.max_cloud is None else f", cloud ≤ {self.max_cloud:g}")

    @property
    def start(self) -> datetime:
        """Noctis' window: ``[start 00:00 UTC, end + 1 day 00:00 UTC)``."""
        return datetime.combine(self.case.start, dtime(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.case.end + timedelta(days=1), dtime(0), tzinfo=UTC)


ANTIMERIDIAN: Final = Query(
    Case("antimeridian", "5 years"), shape=box_aoi(180.0, -17.5, km=ANTIMERIDIAN_KM)
)
"""A 150 km square centred on 180°, 17.5° S (by Fiji), split at the antimeridian as RFC 7946
says: a MultiPolygon from 179.29° E to 180° and from -180° to 179.29° W."""
QUERIES: Final = (
    *(Query(c) for c in ALL_CASES),
    Query(CLOUD_CASE, CLOUD_MAX),
    ANTIMERIDIAN,
)
READONLY_SMALL: Final = Query(Case("point", "1 month"))
"""A small search, where pgstac's write to its searches table is a large share."""
PROBED: Final = Query(Case("city", "1 month"))
"""The case the window-end probes are put in."""


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stac_datetime(query: Query, form: str = "aligned") -> str:
    """The window as a STAC ``datetime`` interval (closed at both ends in STAC).

    ``aligned``: the end is Noctis' exclusive end less one microsecond (timestamptz's
    resolution), so the closed interval holds exactly the half-open window's instants.
    ``inclusive end``: Noctis' end as is (a scene at exactly 00:00 of the day after the window
    matches in pgstac, not in Noctis). ``bare dates``: the finder's dates as written.
    """
    if form == "aligned":
        return f"{_stamp(query.start)}/{_stamp(query.end - ONE_MICROSECOND)}"
    if form == "inclusive end":
        return f"{_stamp(query.start)}/{_stamp(query.end)}"
    if form == "bare dates":
        return f"{query.case.start.isoformat()}/{query.case.end.isoformat()}"
    raise ValueError(f"unknown datetime form {form!r}")


def stac_search(
    query: Query, *, limit: int, nohydrate: bool = False, form: str = "aligned"
) -> dict[str, Any]:
    """The body of ``pgstac.search()`` for ``query``: ids only, every match on one page."""
    body: dict[str, Any] = {
        "intersects": json.loads(shapely.to_geojson(query.geometry)),
        "datetime": stac_datetime(query, form),
        "fields": {"include": ["id"]},
        "limit": limit,
    }
    if query.max_cloud is not None:
        body["filter-lang"] = "cql2-json"
        body["filter"] = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, query.max_cloud]}
    if nohydrate:
        body["conf"] = {"nohydrate": True}
    return body
