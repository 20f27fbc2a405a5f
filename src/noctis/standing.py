"""Standing studies, as plain async functions (no Prefect here): scenes ingested after a study
ran are matched and announced, none missed, none twice.

**Which studies stand.** Every study (finder x dream) whose link step committed stands, from
that COMMIT, while

- it has not been closed (:func:`close_study`: ``noctis study close``, or Augur through the
  ``close-study/default`` deployment), and
- its window can still gain scenes: the finder has no end date, or its end
  (``end_date + 1 day``, 00:00 UTC) is less than ``NOCTIS_STANDING_GRACE_DAYS`` ago (late
  ingest of scenes acquired inside the window). Past that, it stops standing by itself.

The matcher judges this at the time each scene was queued, not at the batch's: a scene written
while the study stood is matched to it even by a batch that runs after the close.

Rerunning a study makes it stand again (reopened, with the finder's criteria as now checked);
a rerun whose window ended more than the grace ago stops it standing.

**Seeing every new scene once.** Triggers on ``archive_item`` queue, inside the writer's own
transaction, every inserted scene and every scene whose footprint, acquired_at, cloud_cover or
collection an UPDATE changed (``standing_change``): a scene is queued exactly when its write
commits, whoever wrote it, and a no-op UPDATE queues nothing. :func:`match_batch` takes up to
``NOCTIS_STANDING_BATCH`` queued scenes ``FOR UPDATE SKIP LOCKED`` and, in the same transaction,
links them to every standing study they match (the study's own rule and coverage), removes the
lookup rows of updated scenes that no longer match, writes one ``updated`` notification per
study that changed, and deletes the queue rows. A batch that fails rolls back whole: its scenes
are queued again. Concurrent batches take disjoint scenes; the fence of
:mod:`noctis.repositories.standing` closes the gap between a study's link step and the matcher.

**A scene that no longer matches.** When an update moves a scene out of a standing study (its
footprint, time, cloud cover or collection changed), its lookup row is deleted, and the
study's ``updated`` notification counts it in ``removed_count`` (``matched_count`` is the total
after the batch). The batch deletes that study's stored coverage plans in the same transaction
(a plan never names or counts a scene that is gone): ``noctis plan`` or a rerun makes new ones.
A closed study's lookup rows change only by what was queued while it stood (the rule is judged
at each scene's queue time, above), even when the matcher reaches it after the close; nothing
queued after the close touches them: they are the record of what the study found. A deleted
scene takes its lookup rows with it (foreign key cascade).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

from noctis import outbox
from noctis.augur import AugurClient, Notification, NotificationEvent
from noctis.errors import DatabaseUnavailable, FinderNotFound, StudyNeverRan, StudyNotStanding
from noctis.finders import check_row
from noctis.outbox import OpenUnitOfWork
from noctis.repositories import OutboxMessage, StandingState
from noctis.settings import DEFAULT_STANDING_GRACE_DAYS
from noctis.unit_of_work import UnitOfWork

CLOSED_BY_REQUEST = "closed on request"
BATCH_ATTEMPTS = 3
"""A batch that failed as transient (a deadlock between two batches, a lost connection) rolled
back whole, its scenes queued again: a pass tries it this many times in all, then raises (the
flow's task retries the pass; ``noctis standing match`` exits 1)."""


def new_pass_id() -> str:
    """The id of a pass run outside Prefect: it stands where a flow run's id would."""
    return f"standing-{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class StudyUpdate:
    finder_id: int
    dream_id: int
    new: int
    removed: int
    total: int


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One committed batch."""

    items: tuple[int, ...]
    """The archive items it matched (each once)."""
    updates: list[StudyUpdate]
    messages: list[OutboxMessage]
    committed_at: float
    """``time.time()`` right after COMMIT."""


async def match_batch(
    uow: UnitOfWork, *, batch: int, grace: timedelta, pass_id: str | None
) -> BatchResult | None:
    """Take up to ``batch`` queued scenes and match them (module doc), then commit; None when
    the queue is empty. With ``pass_id``, the ``updated`` notifications are written into the
    outbox (the flow run's id, or :func:`new_pass_id`), in the same transaction."""
    await uow.standing.fence_batch()
    items = await uow.standing.take_changes(limit=batch)
    if not items:
        await uow.commit()
        return None
    await uow.standing.lock_touched(items, grace=grace)
    removed = await uow.standing.unlink_stale(items, grace=grace)
    await uow.plans.discard(sorted(removed))  # a stored plan never counts a scene that is gone
    new = await uow.standing.link_items(items, grace=grace)
    changed = sorted(set(removed) | set(new))
    totals = await uow.standing.totals(changed)
    updates = [
        StudyUpdate(
            f, d, new=new.get((f, d), 0), removed=removed.get((f, d), 0), total=totals[f, d]
        )
        for f, d in changed
    ]
    messages: list[OutboxMessage] = []
    if pass_id is not None:
        messages = await uow.outbox.add_many([updated_notification(u, pass_id) for u in updates])
    await uow.commit()
    return BatchResult(tuple(items), updates, messages, committed_at=time.time())


def updated_notification(update: StudyUpdate, pass_id: str) -> Notification:
    """What Augur hears of one study's batch: the new and removed counts and the total."""
    return Notification(
        event=NotificationEvent.UPDATED,
        dream_pk=update.dream_id,
        imagery_finder_pk=update.finder_id,
        flow_run_id=pass_id,
        matched_count=update.total,
        new_count=update.new,
        removed_count=update.removed,
    )


@dataclass
class PassReport:
    """One pass of the standing matcher."""

    pass_id: str
    batches: int = 0
    scenes: int = 0
    new: int = 0
    removed: int = 0
    notifications: int = 0
    delivered: int = 0
    undelivered: int = 0
    """Left in the outbox (Augur did not take them now): the dispatcher delivers them."""
    standing: int = 0
    backlog: int = 0
    """Scenes still queued when the pass ended (written meanwhile, or beyond ``max_batches``)."""
    seconds: float = 0.0
    studies: set[tuple[int, int]] = field(default_factory=set)


async def match_pass(
    open_uow: OpenUnitOfWork,
    *,
    batch: int,
    grace: timedelta,
    augur: AugurClient | None,
    give_up_after: timedelta,
    pass_id: str | None = None,
    max_batches: int | None = None,
    on_batch: Callable[[BatchResult], None] | None = None,
) -> PassReport:
    """Match batches until the queue is empty (or ``max_batches``), delivering each batch's
    notifications right after its COMMIT; what Augur does not take waits in the outbox."""
    started = time.monotonic()
    report = PassReport(pass_id=pass_id or new_pass_id())
    announce = report.pass_id if augur is not None else None
    while max_batches is None or report.batches < max_batches:
        result = await _batch_with_retries(open_uow, batch=batch, grace=grace, pass_id=announce)
        if result is None:
            break
        report.batches += 1
        report.scenes += len(result.items)
        for update in result.updates:
            report.new += update.new
            report.removed += update.removed
            report.studies.add((update.finder_id, update.dream_id))
        report.notifications += len(result.messages)
        if augur is not None and result.messages:
            delivered = await deliver_batch(
                open_uow, augur, result.messages, by=f"standing pass {report.pass_id}",
                give_up_after=give_up_after,
            )  # fmt: skip
            report.delivered += delivered
            report.undelivered += len(result.messages) - delivered
        if on_batch is not None:
            on_batch(result)
    async with open_uow() as uow:
        report.backlog = await uow.standing.backlog()
        report.standing = await uow.standing.count_standing(grace=grace)
    report.seconds = time.monotonic() - started
    return report


async def _batch_with_retries(
    open_uow: OpenUnitOfWork, *, batch: int, grace: timedelta, pass_id: str | None
) -> BatchResult | None:
    for attempt in range(1, BATCH_ATTEMPTS):
        try:
            async with open_uow() as uow:
                return await match_batch(uow, batch=batch, grace=grace, pass_id=pass_id)
        except DatabaseUnavailable:
            await asyncio.sleep(random.uniform(0, 0.1 * 2**attempt))  # noqa: S311 (jitter)
    async with open_uow() as uow:  # the last attempt: its failure is the pass's
        return await match_batch(uow, batch=batch, grace=grace, pass_id=pass_id)


async def deliver_batch(
    open_uow: OpenUnitOfWork,
    augur: AugurClient,
    messages: list[OutboxMessage],
    *,
    by: str,
    give_up_after: timedelta,
) -> int:
    """Deliver a batch's notifications right after its COMMIT, together
    (:func:`noctis.outbox.deliver_many`: one claim, concurrent requests on one HTTP client, one
    transaction for the outcomes); returns how many Augur took (the rest wait in the outbox for
    the dispatcher), or none while Augur asked to wait (its ``Retry-After``)."""
    async with open_uow() as uow:
        if await uow.outbox.asked_to_wait() is not None:
            return 0
    done = await outbox.deliver_many(
        open_uow, augur, [m.id for m in messages], by=by, give_up_after=give_up_after
    )
    return sum(d.outcome == "delivered" for d in done)


@dataclass(frozen=True, slots=True)
class ClosedStudy:
    state: StandingState
    already: bool
    """It was closed before this request (nothing changed)."""


async def close_study(
    uow: UnitOfWork,
    *,
    finder_id: int,
    dream_id: int,
    grace: timedelta = timedelta(days=DEFAULT_STANDING_GRACE_DAYS),
) -> ClosedStudy:
    """Close a standing study: no scene ingested from now on is matched to it; its lookup rows
    stay. Closing a closed study changes nothing. A study that does not stand raises
    :class:`StudyNotStanding` saying why: its window ended more than ``grace`` ago, or it ran
    when it had; :class:`StudyNeverRan` when it never ran; :class:`InvalidFinder` when its
    finder holds a date Noctis cannot read (before year 1, as a run says)."""
    before = await uow.standing.state(finder_id=finder_id, dream_id=dream_id, grace=timedelta(0))
    if before is None:
        raise await _not_standing(uow, finder_id=finder_id, dream_id=dream_id, grace=grace)
    state = await uow.standing.close(
        finder_id=finder_id, dream_id=dream_id, reason=CLOSED_BY_REQUEST
    )
    await uow.commit()
    assert state is not None  # the row exists, and a close never deletes it
    return ClosedStudy(state, already=before.closed_at is not None)


async def _not_standing(
    uow: UnitOfWork, *, finder_id: int, dream_id: int, grace: timedelta
) -> StudyNotStanding:
    """Why a study with no standing row does not stand (:func:`close_study`)."""
    try:
        report = await uow.finders.describe(finder_id)
    except FinderNotFound:
        return StudyNeverRan(finder_id, dream_id)
    check_row(finder_id, report)  # a date Python cannot hold: InvalidFinder, as a run says
    finder = await uow.finders.get(finder_id)
    await uow.dreams.get(dream_id)  # an unknown dream: DreamNotFound, not a window's reason
    rows = await uow.lookups.count(finder_id=finder_id, dream_id=dream_id)
    ran = f"it ran ({rows:,} lookup row{'s' * (rows != 1)}, kept) but " if rows else ""
    days = f"{grace / timedelta(days=1):g} days (NOCTIS_STANDING_GRACE_DAYS)"
    if finder.end_date is not None and finder.end_date < date.max:  # date.max: open, in effect
        end = datetime.combine(finder.end_date, clock(0), tzinfo=UTC) + timedelta(days=1)
        if not await uow.standing.can_stand(end, grace=grace):
            return StudyNotStanding(
                finder_id, dream_id,
                f"{ran}its window ended on {finder.end_date.isoformat()}, more than {days} "
                "ago, and a study whose window ended longer ago than that never stands: "
                "there is nothing to close",
            )  # fmt: skip
    if rows:
        return StudyNotStanding(
            finder_id, dream_id,
            f"{ran}it has no standing row though its window can stand now: it last ran before "
            "Noctis recorded standing studies (Alembic 0004), or its window was extended since "
            "it last ran: rerun it to make it stand",
        )  # fmt: skip
    return StudyNeverRan(finder_id, dream_id)
