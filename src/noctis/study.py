"""A study (one finder for one dream) as plain async functions, with no Prefect here.

1. :func:`check_study` loads the finder and the dream and checks the finder
   (:func:`noctis.finders.check_finder`) before anything is written; every problem is a
   :class:`~noctis.errors.NotFound` or an :class:`~noctis.errors.InvalidFinder` naming the
   object and the reason.
2. :func:`link_study` records every match for the dream in one set-based statement, measures
   the study's union coverage, makes its coverage plan (when given a planner:
   :func:`noctis.plans.plan_in_link`) and, when Augur is to hear of it, writes the
   ``completed`` notification into the outbox, all in one transaction, then commits: the
   notification exists exactly when the rows and the plan do, with the figures of that
   committed write.
3. :func:`summarise_study` lists the top items and counts the suspect footprints (views).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from noctis.augur import Notification, NotificationEvent
from noctis.cover import PlanSummary
from noctis.finders import DEFAULT_LIMITS, AoiLimits, Window, check_finder
from noctis.repositories import MatchCriteria, OutboxMessage, StudyItem
from noctis.settings import DEFAULT_STANDING_GRACE_DAYS
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
class LinkedStudy:
    """What the committed link step wrote: the counts and coverage Augur hears."""

    new: int
    total: int
    """Lookup rows the study has now (new and earlier)."""
    coverage: float | None
    """Share of the AOI covered by at least one matched item; None for a point AOI."""
    message: OutboxMessage | None = None
    """The ``completed`` notification committed with the rows (None when not announced)."""
    replayed: bool = False
    """The COMMIT's answer was lost but it had landed: these are the counts of that write."""
    plan: PlanSummary | None = None
    """The whole window's coverage plan, made and stored in the link transaction (None: no
    planner, a point AOI, or a replayed COMMIT, whose notification carries the plan's size)."""


@dataclass(frozen=True, slots=True)
class StudySummary:
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


Planner = Callable[[UnitOfWork, CheckedStudy], Awaitable[PlanSummary | None]]
"""Makes and stores a study's coverage plan inside the caller's transaction."""


async def link_study(
    uow: UnitOfWork,
    study: CheckedStudy,
    *,
    announce_as: str | None = None,
    standing_grace: timedelta = timedelta(days=DEFAULT_STANDING_GRACE_DAYS),
    planner: Planner | None = None,
) -> LinkedStudy:
    """Record the study's matches (one statement), measure its coverage and commit.

    The study then stands (:mod:`noctis.standing`) unless its window ended more than
    ``standing_grace`` ago: its criteria are written to ``standing_study`` in the same
    transaction, behind the fence that keeps a scene from slipping between the link statement
    and the standing matcher. A study whose window ended longer ago than that does not stand:
    its standing row, if an earlier run wrote one, is deleted in the same transaction, so no
    batch matches scenes by the earlier criteria after COMMIT.

    With ``announce_as`` (the flow run's id), the ``completed`` notification is written into
    the outbox in the same transaction, as its last statement before COMMIT. A retry of the
    same run first looks for that notification, under the study's lock: if the earlier
    COMMIT landed although its answer was lost, its counts are returned (``replayed``) and
    nothing is written twice, so Augur hears the counts of the committed write.
    """
    criteria, dream_id = study.criteria, study.dream_id
    await uow.lookups.lock(finder_id=study.finder_id, dream_id=dream_id)
    if announce_as is not None:
        earlier = await uow.outbox.committed_update(announce_as)
        if earlier is not None:
            told = earlier.notification
            return LinkedStudy(
                new=told.new_count,
                total=told.matched_count,
                coverage=told.coverage,
                message=earlier,
                replayed=True,
            )
    stands = await uow.standing.fence_study(criteria, dream_id=dream_id, grace=standing_grace)
    linked = await uow.lookups.link(criteria=criteria, dream_id=dream_id, locked=True)
    if stands:
        await uow.standing.enroll(criteria, dream_id=dream_id)
    else:  # a window that ended beyond the grace never stands, whatever an earlier run wrote
        await uow.standing.withdraw(finder_id=study.finder_id, dream_id=dream_id)
    coverage = await uow.lookups.union_coverage(criteria=criteria, dream_id=dream_id)
    plan = await planner(uow, study) if planner is not None else None
    message = None
    if announce_as is not None:
        message = await uow.outbox.add(
            completed_notification(study, new=linked.new, total=linked.total, coverage=coverage,
                                   flow_run_id=announce_as, plan=plan)
        )  # fmt: skip
    await uow.commit()
    return LinkedStudy(
        new=linked.new, total=linked.total, coverage=coverage, message=message, plan=plan
    )


def completed_notification(
    study: CheckedStudy,
    *,
    new: int,
    total: int,
    coverage: float | None,
    flow_run_id: str,
    plan: PlanSummary | None = None,
) -> Notification:
    """The ``completed`` notification of a study update: what the outbox stores and Augur
    receives. Anything Augur should hear about the update belongs here, computed inside the
    link transaction."""
    return Notification(
        event=NotificationEvent.COMPLETED,
        dream_pk=study.dream_id,
        imagery_finder_pk=study.finder_id,
        flow_run_id=flow_run_id,
        matched_count=total,
        new_count=new,
        coverage=coverage,
        plan_scenes=None if plan is None else plan.scenes,
        plan_coverage=None if plan is None else plan.coverage,
    )


async def summarise_study(uow: UnitOfWork, study: CheckedStudy, *, top: int = 10) -> StudySummary:
    """The study's top items and suspect count, for the artifact and the log (views only)."""
    items = await uow.lookups.top_items(
        finder_id=study.finder_id, dream_id=study.dream_id, limit=top
    )
    suspects = await uow.lookups.suspect_count(finder_id=study.finder_id, dream_id=study.dream_id)
    return StudySummary(top_items=items, suspect_count=suspects)
