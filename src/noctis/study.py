"""The imagery-finder study as plain async functions (no Prefect here).

1. :func:`check_study` loads the finder and the dream and checks the finder
   before anything is written; every problem is a :class:`NotFound` or an
   :class:`InvalidFinder` naming the object and the reason.
2. :func:`link_study` records every match for the dream in one set-based
   statement and commits.
3. :func:`summarise_study` computes the union coverage and the top items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from noctis.errors import InvalidFinder
from noctis.models import ImageryFinder
from noctis.repositories import LinkResult, LocationReport, MatchCriteria, StudyItem
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
        """First instant after the window (exclusive)."""
        if self.end_date is None or self.end_date == date.max:
            return None
        return datetime.combine(self.end_date + timedelta(days=1), time(0), tzinfo=UTC)

    def __str__(self) -> str:
        first = self.start_date.isoformat() if self.start_date else "(open)"
        last = self.end_date.isoformat() if self.end_date else "(open)"
        return f"{first} .. {last}"


@dataclass(frozen=True, slots=True)
class CheckedStudy:
    finder_id: int
    finder_name: str | None
    dream_id: int
    dream_name: str
    window: Window
    location_type: str
    criteria: MatchCriteria


@dataclass(frozen=True, slots=True)
class StudySummary:
    union_coverage: float | None
    top_items: list[StudyItem] = field(default_factory=list)


def check_location(pk: int, report: LocationReport) -> None:
    """Raise :class:`InvalidFinder` unless the location is a valid point or polygonal AOI."""
    if report.geometry_type is None:
        raise InvalidFinder(pk, "has no location")
    if report.is_empty:
        raise InvalidFinder(pk, "has an empty location")
    if not (report.is_point or report.is_polygonal):
        kind = report.geometry_type.removeprefix("ST_")
        raise InvalidFinder(
            pk, f"has a {kind} location: it must be a Point, MultiPoint, Polygon or MultiPolygon"
        )
    if not report.is_valid:
        raise InvalidFinder(pk, f"has an invalid location: {report.invalid_reason}")
    if report.bounds is not None:
        x_min, y_min, x_max, y_max = report.bounds
        if x_min < -180 or x_max > 180 or y_min < -90 or y_max > 90:
            raise InvalidFinder(
                pk,
                "has a location outside [-180, 180] x [-90, 90] (lon/lat, EPSG:4326): "
                "split a location that crosses the antimeridian into a MultiPolygon at ±180",
            )
    if report.widest_edge is not None:
        start, end = report.widest_edge
        raise InvalidFinder(
            pk,
            f"has an edge from longitude {start:g} to {end:g} ({abs(end - start):g}° wide): "
            "a location that crosses the antimeridian must be split into a MultiPolygon at "
            "±180, and one wider than 180° needs a vertex at least every 180° of longitude",
        )


def criteria_for(finder: ImageryFinder, report: LocationReport) -> MatchCriteria:
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


async def check_study(uow: UnitOfWork, *, finder_pk: int, dream_pk: int) -> CheckedStudy:
    """Load and check the finder and the dream; nothing is written."""
    finder = await uow.finders.get(finder_pk)
    dream = await uow.dreams.get(dream_pk)
    window = Window(finder.start_date, finder.end_date)
    if window.start_date and window.end_date and window.start_date > window.end_date:
        raise InvalidFinder(
            finder_pk, f"starts after it ends ({window.start_date} > {window.end_date})"
        )
    if finder.collections is not None and not finder.collections:
        raise InvalidFinder(
            finder_pk, "has an empty collections list: set it to null to search every collection"
        )
    cloud = finder.max_cloud_cover
    if cloud is not None and not 0 <= cloud <= 100:  # the schema's CHECK, for a copy without it
        raise InvalidFinder(
            finder_pk, f"has a max_cloud_cover of {cloud:g}: it must be within [0, 100]"
        )
    report = await uow.finders.describe_location(finder_pk)
    check_location(finder_pk, report)
    criteria = criteria_for(finder, report)
    return CheckedStudy(
        finder_id=finder.id,
        finder_name=finder.name,
        dream_id=dream.id,
        dream_name=dream.name,
        window=window,
        location_type=(report.geometry_type or "").removeprefix("ST_"),
        criteria=criteria,
    )


async def link_study(uow: UnitOfWork, study: CheckedStudy) -> LinkResult:
    """Record the study's matches (one statement) and commit."""
    result = await uow.lookups.link(criteria=study.criteria, dream_id=study.dream_id)
    await uow.commit()
    return result


async def summarise_study(uow: UnitOfWork, study: CheckedStudy, *, top: int = 10) -> StudySummary:
    coverage = await uow.lookups.union_coverage(criteria=study.criteria, dream_id=study.dream_id)
    items = await uow.lookups.top_items(
        finder_id=study.finder_id, dream_id=study.dream_id, limit=top
    )
    return StudySummary(union_coverage=coverage, top_items=items)
