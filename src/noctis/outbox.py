"""Delivering the notification outbox to Augur, as plain async functions (no Prefect here).

A notification is written into the outbox in the transaction of what it reports
(:func:`noctis.study.link_study`), and delivered by whoever gets to it first:

- the flow, right after COMMIT (:func:`deliver`): the normal path, no added latency;
- the dispatcher (:func:`dispatch`), every ``NOCTIS_OUTBOX_DISPATCH_SECONDS``: whatever is
  left (a worker killed after COMMIT, Augur down, a lost connection). Several lanes take rows
  oldest first with ``FOR UPDATE SKIP LOCKED`` and hold the lock while sending, so no row is
  sent by two senders at once, and a pass sends a row at most once; the pass stops at the
  first delivery Augur does not take, so a down Augur costs one retry budget per pass, and a
  row tried in vain goes to the back of the queue, so one bad row never starves the others.
  When Augur's last answer asked for a longer wait than a retry budget (``Retry-After``), the
  dispatcher and the standing passes send nothing until then (:meth:`asked_to_wait
  <noctis.repositories.outbox.OutboxRepository.asked_to_wait>`): the wait is kept in the
  attempt's history, so it holds across passes and processes.

Every delivery is one :meth:`~noctis.augur.AugurClient.notify` under the Augur retry policy,
with the row's Idempotency-Key, and is recorded in the row's history. A rejected notification
(4xx) is dead at once, with Augur's words kept; one Augur has not taken within
``NOCTIS_OUTBOX_GIVE_UP_HOURS`` of being written (or requeued) is dead too. ``noctis outbox
status`` shows them, ``noctis outbox requeue`` gives them a new budget.

:func:`announce_ended_runs` writes a ``failed`` for each flow run that ended Crashed, Cancelled
or Failed without an outcome in the outbox (the run died before it could say so), through the
same outbox, so it is deduplicated too. A run whose study update committed keeps its
``completed``: a run is never announced ``failed`` after its update committed. The delivered
``completed`` is pruned a retention period after its delivery; only runs that started within
the shorter :func:`look_back` are announced, so the ``completed`` is always still there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from noctis.augur import AugurClient, Notification, NotificationEvent, NotifyReceipt
from noctis.errors import AugurError, AugurRejected, AugurUnavailable, DatabaseError
from noctis.repositories import Attempt, OutboxEntry, OutboxMessage
from noctis.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)

OpenUnitOfWork = Callable[[], UnitOfWork]
DISPATCH_LANES = 4  # rows a dispatcher sends at once (one Atlas connection each)
SEND_CONCURRENCY = 16  # requests :func:`deliver_many` has in flight (one Atlas connection)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one sender did with one row."""

    outcome: Literal["delivered", "retry", "dead", "skipped"]
    """``skipped``: another sender holds the row, or it is no longer pending."""
    message: OutboxMessage | None = None
    receipt: NotifyReceipt | None = None
    error: AugurError | None = None
    recorded: bool = True
    """False when Augur took it but the outbox could not record so: it may be sent again,
    under the same key."""


async def deliver(
    open_uow: OpenUnitOfWork,
    augur: AugurClient,
    message_id: int,
    *,
    by: str,
    give_up_after: timedelta,
) -> Delivery:
    """Send one row, unless another sender holds it or it is no longer pending."""
    async with open_uow() as uow:
        message = await uow.outbox.claim(message_id)
        if message is None:
            return Delivery("skipped")
        return await _send(uow, augur, message, by=by, give_up_after=give_up_after)


async def deliver_many(
    open_uow: OpenUnitOfWork,
    augur: AugurClient,
    message_ids: Sequence[int],
    *,
    by: str,
    give_up_after: timedelta,
    concurrency: int = SEND_CONCURRENCY,
) -> list[Delivery]:
    """Send several rows together (a standing batch's ``updated``s): ONE claim of them all
    (``FOR UPDATE SKIP LOCKED``: rows another sender holds, or no longer pending, are left out),
    the requests at once, ``concurrency`` at a time, on ``augur``'s one HTTP client, each with
    its row's Idempotency-Key, then every outcome recorded in ONE transaction; the locks are held
    throughout, as :func:`deliver` holds its one. Returns the rows sent, in id order."""
    if not message_ids:
        return []
    async with open_uow() as uow:
        messages = await uow.outbox.claim_many(message_ids)
        lanes = asyncio.Semaphore(concurrency)

        async def one(message: OutboxMessage) -> _Sent:
            async with lanes:
                return await _attempt(augur, message, by=by)

        sent = await asyncio.gather(*(one(m) for m in messages))
        try:
            states = [
                await uow.outbox.record(s.message.id, s.attempt, give_up_after=give_up_after)
                for s in sent
            ]
            await uow.commit()
        except DatabaseError as e:
            if not any(s.receipt is not None for s in sent):
                raise
            logger.warning(
                "Augur took %d notifications but the outbox could not record it (%s): they may "
                "be sent again, under the same keys",
                sum(s.receipt is not None for s in sent),
                e,
            )
            return [
                Delivery("delivered", s.message, s.receipt, recorded=False)
                if s.receipt is not None
                else Delivery("retry", s.message, error=s.error)
                for s in sent
            ]
    return [_outcome(s, state) for s, state in zip(sent, states, strict=True)]


@dataclass(frozen=True, slots=True)
class _Sent:
    """One request made for a claimed row, not yet recorded."""

    message: OutboxMessage
    attempt: Attempt
    receipt: NotifyReceipt | None
    error: AugurError | None


async def _attempt(augur: AugurClient, message: OutboxMessage, *, by: str) -> _Sent:
    """Send a claimed row once (under the Augur retry policy); what happened, to record."""
    started = time.monotonic()
    receipt: NotifyReceipt | None = None
    error: AugurError | None = None
    try:
        receipt = await augur.notify(message.notification, idempotency_key=message.key)
    except AugurRejected as e:
        error, outcome = e, "rejected"
    except AugurUnavailable as e:
        error, outcome = e, "unavailable"
    else:
        outcome = "delivered"
    attempt = Attempt(
        by=by,
        outcome=outcome,
        seconds=time.monotonic() - started,
        status=receipt.status_code if receipt else getattr(error, "status_code", None),
        http_attempts=receipt.attempts if receipt else None,
        error=None if error is None else f"{type(error).__name__}: {error}",
        retry_after=error.retry_after if isinstance(error, AugurUnavailable) else None,
    )
    return _Sent(message, attempt, receipt, error)


def _outcome(sent: _Sent, state: str) -> Delivery:
    """The delivery of a recorded row, ``state`` being its new state."""
    message = sent.message
    if sent.receipt is not None:
        return Delivery("delivered", message, sent.receipt)
    assert sent.error is not None
    if state == "dead":
        logger.error("Notification %s is dead: %s", message.key, sent.attempt.error)
        return Delivery("dead", message, error=sent.error)
    waiting = AugurUnavailable(
        f"{sent.error}; the notification waits in the outbox ({message.key}): the dispatcher "
        "delivers it once Augur takes it",
        retry_after=sent.attempt.retry_after,
    )
    return Delivery("retry", message, error=waiting)


async def _send(
    uow: UnitOfWork,
    augur: AugurClient,
    message: OutboxMessage,
    *,
    by: str,
    give_up_after: timedelta,
) -> Delivery:
    """Send a claimed row (its lock held in ``uow``), record the outcome, commit."""
    sent = await _attempt(augur, message, by=by)
    try:
        state = await uow.outbox.record(message.id, sent.attempt, give_up_after=give_up_after)
        await uow.commit()
    except DatabaseError as e:
        if sent.receipt is None:
            raise
        logger.warning(
            "Augur took %s but the outbox could not record it (%s): it may be sent again, "
            "under the same key",
            message.key,
            e,
        )
        return Delivery("delivered", message, sent.receipt, recorded=False)
    return _outcome(sent, state)


@dataclass
class DispatchReport:
    """One dispatcher pass."""

    announced: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    given_up: int = 0
    pruned: int = 0
    stopped: str | None = None
    """Why the pass stopped early: Augur did not take a notification (its error), or asked
    not to be called yet (``waiting_until``)."""
    waiting_until: datetime | None = None
    """Augur's ``Retry-After``, still ahead when the pass began: nothing was sent."""
    runs_unread: str | None = None
    """Why the ended runs could not be read from the Prefect API (none were announced)."""
    keys: list[str] = field(default_factory=list)
    """The keys delivered, in order."""


async def dispatch(
    open_uow: OpenUnitOfWork,
    augur: AugurClient,
    *,
    by: str,
    give_up_after: timedelta,
    lanes: int = DISPATCH_LANES,
    report: DispatchReport | None = None,
) -> DispatchReport:
    """Deliver every pending row queued before the pass began, oldest first, ``lanes`` at a
    time; stop at the first one Augur does not take (the rest wait for the next pass).

    A pass sends a row at most once: a row Augur took whose delivery could not be recorded
    (Atlas lost the connection meanwhile) is still pending with its old ``queued_at``, and
    would be handed straight back; the next pass records it, or sends it again under the same
    key."""
    report = report or DispatchReport()
    async with open_uow() as uow:
        began = await uow.outbox.clock()
        report.waiting_until = until = await uow.outbox.asked_to_wait()
    if until is not None:  # a Retry-After longer than a retry budget: no lane sends a row
        report.stopped = (
            f"Augur asked not to be called before {until.isoformat(timespec='seconds')} "
            "(Retry-After): nothing sent"
        )
    sent: set[int] = set()  # the rows this pass took, whatever came of them

    async def lane() -> None:
        while report.stopped is None:
            async with open_uow() as uow:
                message = await uow.outbox.claim_next(queued_before=began, excluding=sorted(sent))
                if message is None:
                    return
                sent.add(message.id)
                done = await _send(uow, augur, message, by=by, give_up_after=give_up_after)
            if done.outcome == "delivered":
                report.delivered += 1
                report.keys.append(message.key)
            elif done.outcome == "dead":
                report.dead += 1
            else:
                report.retried += 1
            if isinstance(done.error, AugurUnavailable):  # Augur is down: the rest can wait
                report.stopped = str(done.error)

    await asyncio.gather(*(lane() for _ in range(lanes)))
    if report.stopped is not None:
        async with open_uow() as uow:
            report.given_up = await uow.outbox.give_up_expired(
                give_up_after=give_up_after, cause=report.stopped
            )
            await uow.commit()
    return report


@dataclass(frozen=True, slots=True)
class EndedRun:
    """A flow run of the study that ended without completing, as the Prefect API reports it."""

    flow_run_id: str
    name: str
    imagery_finder_pk: int
    dream_pk: int
    state: str  # the state's name: Crashed, Cancelled, Failed
    message: str | None
    started_at: datetime | None = None
    """None: the run never started (a worker died before starting it), so it committed nothing."""


LOOK_BACK_SHARE = 0.9


def look_back(retention: timedelta) -> timedelta:
    """How far back a run must have started for :func:`announce_ended_runs` to announce it.

    A run's ``completed`` is written after the run started and deleted ``retention`` after its
    delivery (:func:`prune`), so a run that started within the look-back still has its
    ``completed`` if it committed one, however long after that delivery it ended: it is never
    announced ``failed``. The look-back is shorter than the retention by a margin for the
    clocks of Prefect and Atlas. A run that ran longer than the look-back is not announced."""
    return retention * LOOK_BACK_SHARE


async def announce_ended_runs(
    open_uow: OpenUnitOfWork, runs: Sequence[EndedRun], *, started_after: datetime
) -> list[OutboxMessage]:
    """Write a ``failed`` for each run with no outcome in the outbox whose finder exists (an
    unknown finder has no study to fail) and which started after ``started_after`` or never
    started (:func:`look_back`: its outcome, if any, is not yet pruned); returns the rows
    written."""
    runs = [r for r in runs if r.started_at is None or r.started_at > started_after]
    if not runs:
        return []
    written = []
    async with open_uow() as uow:
        known = await uow.outbox.runs_with_messages([r.flow_run_id for r in runs])
        silent = [r for r in runs if r.flow_run_id not in known]
        finders = await uow.finders.existing(sorted({r.imagery_finder_pk for r in silent}))
        for run in silent:
            if run.imagery_finder_pk not in finders:
                continue
            reason = f": {run.message}" if run.message else ""
            message = await uow.outbox.add_failure(
                Notification(
                    event=NotificationEvent.FAILED,
                    dream_pk=run.dream_pk,
                    imagery_finder_pk=run.imagery_finder_pk,
                    flow_run_id=run.flow_run_id,
                    error=f"The flow run {run.name} ended {run.state}{reason}",
                )
            )
            if message is not None and message.notification.event is NotificationEvent.FAILED:
                written.append(message)
        await uow.commit()
    return written


async def enqueue_failure(uow: UnitOfWork, notification: Notification) -> OutboxMessage | None:
    """Write a run's ``failed`` and commit; returns the run's outcome to deliver (its
    ``completed`` if its update committed: that outcome stands)."""
    message = await uow.outbox.add_failure(notification)
    await uow.commit()
    return message


async def prune(open_uow: OpenUnitOfWork, *, older_than: timedelta) -> int:
    """Delete the rows delivered more than ``older_than`` ago (the retention); returns how many.
    Runs are announced over a shorter :func:`look_back`, so no run outlives its outcome."""
    total = 0
    while True:
        async with open_uow() as uow:
            deleted = await uow.outbox.prune(older_than=older_than)
            await uow.commit()
        total += deleted
        if deleted == 0:
            return total


async def requeue(open_uow: OpenUnitOfWork, ids: Sequence[int] | None = None) -> int:
    """Dead rows (``ids``, or all) back to pending with a fresh retry budget."""
    async with open_uow() as uow:
        count = await uow.outbox.requeue(ids)
        await uow.commit()
    return count


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    counts: dict[str, Any]
    failing: list[OutboxEntry]
    dead: list[OutboxEntry]


async def status(open_uow: OpenUnitOfWork, *, limit: int = 20) -> OutboxStatus:
    """Rows by state (and until when Augur asked not to be called, if it did and that is still
    ahead), and the oldest failing and dead rows (``limit`` each)."""
    async with open_uow() as uow:
        counts = await uow.outbox.counts()
        counts["waiting_until"] = await uow.outbox.asked_to_wait()  # Augur's Retry-After
        failing = await uow.outbox.entries(states=["pending"], limit=limit, tried=True)
        dead = await uow.outbox.entries(states=["dead"], limit=limit)
    return OutboxStatus(counts, failing, dead)
