"""A study (one finder for one dream) as plain async functions, with no Prefect here.

1. :func:`check_study` loads the finder and the dream and checks the finder
   (:func:`noctis.finders.check_finder`) before anything is written; every problem is a
   :class:`~noctis.errors.NotFound` or an :class:`~noctis.errors.InvalidFinder` naming the
   object and the reason.
2. :func:`link_study` records every match for the dream in one set-based statement and
   commits.
3. :func:`summarise_study` computes the union coverage and the top items.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from noctis.finders import DEFAULT_LIMITS, AoiLimits, Window, check_finder
from noctis.repositories import LinkResult, MatchCriteria, StudyItem
from noctis.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class CheckedStudy:
    """A study whose finder passed every check and whose dream exists."""

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
    suspect_count: int = 0
    """Lookup rows whose footprint has a non-finite coordinate: matched, no coverage."""


async def check_study(
    uow: UnitOfWork, *, finder_id: int, dream_id: int, limits: AoiLimits = DEFAULT_LIMITS
) -> CheckedStudy:
    """Load the finder and the dream, then check the finder; nothing is written.

    An unknown finder is reported first, then an unknown dream, then what is wrong with the
    finder.
    """
    report = await uow.finders.describe(finder_id)
    dream = await uow.dreams.get(dream_id)
    finder = await check_finder(uow, finder_id, limits=limits, report=report)
    return CheckedStudy(
        finder_id=finder.finder_id,
        finder_name=finder.name,
        dream_id=dream.id,
        dream_name=dream.name,
        window=finder.window,
        location_type=finder.location_type,
        criteria=finder.criteria,
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
    suspects = await uow.lookups.suspect_count(finder_id=study.finder_id, dream_id=study.dream_id)
    return StudySummary(union_coverage=coverage, top_items=items, suspect_count=suspects)
