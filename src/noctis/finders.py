"""Checking a finder: the one place that decides whether an ImageryFinder can be searched.

:func:`check_finder` is used by the flow (through :func:`noctis.study.check_study`) and by the
notebook helpers alike, so a finder the flow refuses is refused everywhere, with the same
message. Every problem is an :class:`~noctis.errors.InvalidFinder` naming the finder and the
reason; nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from noctis.errors import InvalidFinder
from noctis.geometry import widest_edge, within_lon_lat
from noctis.models import ImageryFinder
from noctis.repositories import FinderReport, MatchCriteria
from noctis.repositories.finders import PYTHON_DATES
from noctis.settings import Settings
from noctis.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class Window:
    """Whole UTC days, both ends inclusive; None leaves that side open."""

    start_date: date | None
    end_date: date | None

    @property
    def start(self) -> datetime | None:
        """First instant in the window."""
        if self.start_date is None:
            return None
        return datetime.combine(self.start_date, time(0), tzinfo=UTC)

    @property
    def end(self) -> datetime | None:
        """First instant after the window (exclusive); None when open or at the calendar's end."""
        if self.end_date is None or self.end_date == date.max:
            return None
        return datetime.combine(self.end_date + timedelta(days=1), time(0), tzinfo=UTC)

    def __str__(self) -> str:
        first = self.start_date.isoformat() if self.start_date else "(open)"
        last = self.end_date.isoformat() if self.end_date else "(open)"
        return f"{first} .. {last}"


@dataclass(frozen=True, slots=True)
class AoiLimits:
    """How large an AOI Noctis takes (``NOCTIS_MAX_AOI_POINTS`` / ``NOCTIS_MAX_AOI_VERTICES``).

    A MultiPoint costs the match in proportion to its points (measured: 100,000 points took
    12x an ordinary region on a 100,000-scene archive, 5,000 points about 1x); a polygon's
    vertices cost little (60,000 took 1x), so its bound is only a guard against the absurd.
    """

    max_points: int = 5_000
    max_vertices: int = 1_000_000


DEFAULT_LIMITS = AoiLimits()


def aoi_limits(settings: Settings) -> AoiLimits:
    return AoiLimits(
        max_points=settings.noctis_max_aoi_points, max_vertices=settings.noctis_max_aoi_vertices
    )


@dataclass(frozen=True, slots=True)
class CheckedFinder:
    """A finder that passed every check, and what the repositories match on."""

    finder_id: int
    name: str | None
    window: Window
    location_type: str
    """``Point``, ``MultiPoint``, ``Polygon`` or ``MultiPolygon``."""
    criteria: MatchCriteria


def check_filters(finder: ImageryFinder) -> None:
    """Raise :class:`InvalidFinder` for an inverted window, empty collections or a bad cloud cap."""
    window = Window(finder.start_date, finder.end_date)
    if window.start_date and window.end_date and window.start_date > window.end_date:
        raise InvalidFinder(
            finder.id, f"starts after it ends ({window.start_date} > {window.end_date})"
        )
    if finder.collections is not None and not finder.collections:
        raise InvalidFinder(
            finder.id, "has an empty collections list: set it to null to search every collection"
        )
    if finder.collections is not None and None in finder.collections:
        raise InvalidFinder(
            finder.id,
            "has a null among its collections, which no scene's collection equals: remove it",
        )
    cloud = finder.max_cloud_cover
    if cloud is not None and not 0 <= cloud <= 100:  # the schema's CHECK, for a copy without it
        raise InvalidFinder(
            finder.id, f"has a max_cloud_cover of {cloud:g}: it must be within [0, 100]"
        )


def check_row(finder_id: int, report: FinderReport) -> None:
    """Raise :class:`InvalidFinder` for values the row holds that Python cannot: a date outside
    0001-01-01 .. 9999-12-31, a collections array of more than one dimension."""
    for column, value in report.unrepresentable_dates:
        raise InvalidFinder(
            finder_id,
            f"has a {column} of {value}, which Noctis cannot work with: dates must be within "
            f"{PYTHON_DATES[0].isoformat()} .. {PYTHON_DATES[1].isoformat()} (null leaves that "
            "side of the window open)",
        )
    dimensions = report.collections_dimensions
    if dimensions is not None and dimensions != 1:
        raise InvalidFinder(
            finder_id,
            f"has a {dimensions}-dimensional collections array: it must be a flat list of "
            "collection names (or null to search every collection)",
        )


def check_location(
    finder_id: int, report: FinderReport, limits: AoiLimits = DEFAULT_LIMITS
) -> None:
    """Raise :class:`InvalidFinder` unless the location is a valid point or polygonal AOI
    within ``limits``."""
    if report.geometry_type is None:
        raise InvalidFinder(finder_id, "has no location")
    if report.is_empty:
        raise InvalidFinder(finder_id, "has an empty location")
    if not (report.is_point or report.is_polygonal):
        kind = report.geometry_type.removeprefix("ST_")
        raise InvalidFinder(
            finder_id,
            f"has a {kind} location: it must be a Point, MultiPoint, Polygon or MultiPolygon",
        )
    if report.is_point and report.vertices > limits.max_points:
        raise InvalidFinder(
            finder_id,
            f"has a {report.geometry_type.removeprefix('ST_')} location of {report.vertices:,} "
            f"points: at most {limits.max_points:,} (NOCTIS_MAX_AOI_POINTS); give a dense "
            "sampling of an area as a polygon",
        )
    if report.vertices > limits.max_vertices:
        raise InvalidFinder(
            finder_id,
            f"has a location of {report.vertices:,} vertices: at most {limits.max_vertices:,} "
            "(NOCTIS_MAX_AOI_VERTICES); simplify it (ST_SimplifyPreserveTopology)",
        )
    if not report.is_valid:
        raise InvalidFinder(finder_id, f"has an invalid location: {report.invalid_reason}")
    if report.bounds is not None and not within_lon_lat(report.bounds):
        raise InvalidFinder(
            finder_id,
            "has a location outside [-180, 180] x [-90, 90] (lon/lat, EPSG:4326): "
            "split a location that crosses the antimeridian into a MultiPolygon at ±180",
        )
    edge = None if report.polygon_wkb is None else widest_edge(report.polygon_wkb)
    if edge is not None:
        start, end = edge
        raise InvalidFinder(
            finder_id,
            f"has an edge from longitude {start:g} to {end:g} ({abs(end - start):g}° wide): "
            "a location that crosses the antimeridian must be split into a MultiPolygon at "
            "±180, and one wider than 180° needs a vertex at least every 180° of longitude",
        )


def criteria_for(finder: ImageryFinder, report: FinderReport) -> MatchCriteria:
    """What the repositories match on, from a finder whose location passed the checks."""
    window = Window(finder.start_date, finder.end_date)
    return MatchCriteria(
        finder_id=finder.id,
        location=finder.location,
        start=window.start,
        end=window.end,
        max_cloud_cover=finder.max_cloud_cover,
        collections=tuple(finder.collections) if finder.collections is not None else None,
        area_m2=report.area_m2 if report.is_polygonal else None,
    )


async def check_finder(
    uow: UnitOfWork,
    finder_id: int,
    *,
    limits: AoiLimits = DEFAULT_LIMITS,
    report: FinderReport | None = None,
) -> CheckedFinder:
    """Check the finder's row, load it, check its window, filters and location; nothing is
    written. ``report`` is the row's :meth:`describe`, when the caller already has it."""
    report = report or await uow.finders.describe(finder_id)
    check_row(finder_id, report)
    finder = await uow.finders.get(finder_id)
    check_filters(finder)
    check_location(finder_id, report, limits)
    return CheckedFinder(
        finder_id=finder.id,
        name=finder.name,
        window=Window(finder.start_date, finder.end_date),
        location_type=(report.geometry_type or "").removeprefix("ST_"),
        criteria=criteria_for(finder, report),
    )
