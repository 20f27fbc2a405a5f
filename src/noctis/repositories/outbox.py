"""The notification outbox: notifications written with what they report, delivered later.

A row is written in the transaction of the work it reports (the study's link step writes its
``completed``), so the notification exists exactly when the work committed. Senders (the flow
right after COMMIT, the dispatcher) take a row with ``SELECT … FOR UPDATE SKIP LOCKED`` and
keep the lock while they send, so two senders never send one row at once, and a sender that
dies releases it with its connection. Times are the database's. Text from outside (Augur's
words, an error) is stored through :func:`storable`: PostgreSQL's ``text`` and ``jsonb`` refuse
a NUL and a lone surrogate, and an attempt that cannot be recorded would stay first in the
queue.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Double,
    Integer,
    Interval,
    Text,
    all_,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.augur import Notification, NotificationEvent
from noctis.db import translated
from noctis.models import NotificationOutbox as Row

HISTORY_KEPT = 20  # deliveries kept in a row's history, the latest
_LATEST: ColumnElement[Any] = literal_column(
    "'$[last - 19 to last]'::jsonpath"
)  # the last HISTORY_KEPT elements


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A notification waiting in the outbox (or delivered), as a sender sees it."""

    id: int
    key: str
    notification: Notification
    state: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery did, for the row's history."""

    by: str
    outcome: str  # "delivered", "unavailable" (retried later) or "rejected" (dead at once)
    seconds: float
    status: int | None = None
    http_attempts: int | None = None
    error: str | None = None
    retry_after: float | None = None
    """Seconds Augur's last answer asked to wait (its ``Retry-After``), if it asked."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A row as ``noctis outbox status`` lists it."""

    id: int
    key: str
    event: str
    imagery_finder_id: int
    dream_id: int
    flow_run_id: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    queued_at: datetime


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str | None) -> str | None:
    """``text`` as PostgreSQL can store it: NUL and what UTF-8 cannot encode (a lone surrogate
    from a JSON ``\\ud800``) become U+FFFD."""
    if text is None:
        return None
    return _UNSTORABLE.sub("\ufffd", text)


_MESSAGE = (Row.id, Row.idempotency_key, Row.payload, Row.state, Row.attempts, Row.created_at)


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        key=row.idempotency_key,
        notification=Notification.model_validate(row.payload),
        state=row.state,
        attempts=row.attempts,
        created_at=row.created_at,
    )


def _retry_at(
    now: ColumnElement[datetime], retry_after: float | None, give_up_after: timedelta
) -> ColumnElement[Any]:
    """When Augur asked to be called again (NULL if it did not), at most ``give_up_after``
    ahead: every row waiting that long is dead anyway."""
    if retry_after is None:
        return literal(None, DateTime(timezone=True))
    wait = timedelta(seconds=min(retry_after, give_up_after.total_seconds()))
    return now + literal(wait, Interval)


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, notification: Notification) -> OutboxMessage:
        """Write ``notification`` (the caller's transaction commits it); its key is fixed now."""
        stmt = insert(Row).values(**self._values(notification)).returning(*_MESSAGE)
        async with translated(f"writing the {notification.event} of Dream {notification.dream_pk}"):
            return _message((await self._session.execute(stmt)).one())

    async def add_many(self, notifications: Sequence[Notification]) -> list[OutboxMessage]:
        """Write several notifications in one statement (a standing batch's ``updated``s)."""
        if not notifications:
            return []
        stmt = insert(Row).values([self._values(n) for n in notifications]).returning(*_MESSAGE)
        async with translated(f"writing {len(notifications)} notifications"):
            return [_message(row) for row in (await self._session.execute(stmt)).all()]

    async def add_failure(self, notification: Notification) -> OutboxMessage | None:
        """Write a run's ``failed``, unless the run already has an outcome in the outbox; returns
        the run's outcome to deliver: its ``completed`` if its study update committed (that
        outcome stands), else its ``failed`` (this one, or one written before)."""
        values = self._values(notification)
        committed = exists().where(
            Row.flow_run_id == notification.flow_run_id,
            Row.event == NotificationEvent.COMPLETED.value,
        )
        stmt = (
            insert(Row)
            .from_select(list(values), select(*values.values()).where(~committed))
            .on_conflict_do_nothing(
                index_elements=[Row.flow_run_id, Row.event],
                # The partial index's predicate as a literal, never a bind parameter: PostgreSQL
                # infers the arbiter index while planning, and a generic plan (a connection's
                # sixth execution, or plan_cache_mode) cannot prove `event <> $1` implies it
                # ("no unique or exclusion constraint matching"; found by the chaos run).
                index_where=Row.event != literal_column(f"'{NotificationEvent.UPDATED.value}'"),
            )
            .returning(*_MESSAGE)
        )
        async with translated(f"writing the failure of flow run {notification.flow_run_id}"):
            row = (await self._session.execute(stmt)).one_or_none()
        return _message(row) if row is not None else await self.outcome_of(notification.flow_run_id)

    async def outcome_of(self, flow_run_id: str) -> OutboxMessage | None:
        """A run's notification: its ``completed`` if it has one, else its ``failed``."""
        stmt = (
            select(*_MESSAGE)
            .where(Row.flow_run_id == flow_run_id)
            .order_by(case((Row.event == NotificationEvent.COMPLETED.value, 0), else_=1))
            .limit(1)
        )
        async with translated(f"reading the notifications of flow run {flow_run_id}"):
            row = (await self._session.execute(stmt)).one_or_none()
        return None if row is None else _message(row)

    async def committed_update(self, flow_run_id: str) -> OutboxMessage | None:
        """The ``completed`` a run committed, if any: after a lost COMMIT, whether it landed."""
        message = await self.outcome_of(flow_run_id)
        event = None if message is None else message.notification.event
        return message if event is NotificationEvent.COMPLETED else None

    async def runs_with_messages(self, flow_run_ids: Sequence[str]) -> set[str]:
        stmt = select(Row.flow_run_id).where(Row.flow_run_id.in_(list(flow_run_ids))).distinct()
        async with translated("reading which flow runs have notifications"):
            return set((await self._session.scalars(stmt)).all())

    async def claim(self, message_id: int) -> OutboxMessage | None:
        """Lock a pending row for sending; None if delivered, dead or another sender has it."""
        stmt = (
            select(*_MESSAGE)
            .where(Row.id == message_id, Row.state == "pending")
            .with_for_update(skip_locked=True)
        )
        async with translated(f"taking notification {message_id} from the outbox"):
            row = (await self._session.execute(stmt)).one_or_none()
        return None if row is None else _message(row)

    async def claim_many(self, message_ids: Sequence[int]) -> list[OutboxMessage]:
        """Lock, in one statement, the pending rows among ``message_ids`` for sending, in id
        order; rows delivered, dead or held by another sender are left out."""
        ids = bindparam("ids", list(message_ids), type_=ARRAY(BigInteger))
        stmt = (
            select(*_MESSAGE)
            .where(Row.id == any_(ids), Row.state == "pending")
            .order_by(Row.id)
            .with_for_update(skip_locked=True)
        )
        async with translated(f"taking {len(message_ids)} notifications from the outbox"):
            rows = (await self._session.execute(stmt)).all()
        return [_message(row) for row in rows]

    async def claim_next(
        self, *, queued_before: datetime, excluding: Sequence[int] = ()
    ) -> OutboxMessage | None:
        """Lock the pending row waiting longest (queued before ``queued_before``), skipping rows
        other senders hold and the rows ``excluding`` names; None when there is none."""
        skipped = bindparam("excluding", list(excluding), type_=ARRAY(BigInteger))
        stmt = (
            select(*_MESSAGE)
            .where(Row.state == "pending", Row.queued_at < queued_before, Row.id != all_(skipped))
            .order_by(Row.queued_at, Row.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        async with translated("taking the next notification from the outbox"):
            row = (await self._session.execute(stmt)).one_or_none()
        return None if row is None else _message(row)

    async def record(self, message_id: int, attempt: Attempt, *, give_up_after: timedelta) -> str:
        """Record a delivery of a claimed row; returns its new state. An unavailable Augur
        leaves it pending (back of the queue) until ``give_up_after`` has passed since it was
        written (or requeued): then it is dead, as a rejected one is at once."""
        now = func.clock_timestamp()
        expired = func.coalesce(Row.requeued_at, Row.created_at) < now - give_up_after
        delivered = attempt.outcome == "delivered"
        error = storable(attempt.error)
        state: Any = case((expired, "dead"), else_="pending")
        if delivered or attempt.outcome == "rejected":
            state = "delivered" if delivered else "dead"
        entry = func.jsonb_build_object(
            "at", now,
            "by", literal(attempt.by, Text),
            "outcome", literal(attempt.outcome, Text),
            "status", literal(attempt.status, Integer),
            "http_attempts", literal(attempt.http_attempts, Integer),
            "seconds", literal(round(attempt.seconds, 3), Double),
            "error", literal(error, Text),
            "retry_at", _retry_at(now, attempt.retry_after, give_up_after),
        )  # fmt: skip
        history = func.jsonb_path_query_array(
            Row.history.op("||")(func.jsonb_build_array(entry)), _LATEST
        )
        stmt = (
            update(Row)
            .where(Row.id == message_id)
            .values(
                state=state,
                attempts=Row.attempts + 1,
                history=history,
                last_error=None if delivered else error,
                delivered_at=now if delivered else None,
                queued_at=now,
            )
            .returning(Row.state)
        )
        async with translated(f"recording the delivery of notification {message_id}"):
            return str((await self._session.execute(stmt)).scalar_one())

    async def give_up_expired(self, *, give_up_after: timedelta, cause: str) -> int:
        """Mark dead the pending rows (not held by a sender) older than ``give_up_after``."""
        expired = (
            select(Row.id)
            .where(
                Row.state == "pending",
                func.coalesce(Row.requeued_at, Row.created_at)
                < func.clock_timestamp() - give_up_after,
            )
            .with_for_update(skip_locked=True)
        )
        reason = literal(f"gave up after {give_up_after} without delivery; last cause: ")
        cause = storable(cause) or ""
        stmt = (
            update(Row)
            .where(Row.id.in_(expired.scalar_subquery()))
            .values(state="dead", last_error=reason.op("||")(func.coalesce(Row.last_error, cause)))
        )
        async with translated("giving up on notifications past their retry budget"):
            return (await self._session.execute(stmt)).rowcount or 0  # type: ignore[attr-defined]

    async def requeue(self, ids: Sequence[int] | None = None) -> int:
        """Dead rows (those of ``ids``, or all) back to pending, with a fresh retry budget."""
        where = [Row.state == "dead"] + ([Row.id.in_(list(ids))] if ids is not None else [])
        now = func.clock_timestamp()
        stmt = update(Row).where(*where).values(state="pending", requeued_at=now, queued_at=now)
        async with translated("requeuing dead notifications"):
            return (await self._session.execute(stmt)).rowcount or 0  # type: ignore[attr-defined]

    async def prune(self, *, older_than: timedelta, batch: int = 10_000) -> int:
        """Delete up to ``batch`` rows delivered more than ``older_than`` ago."""
        old = (
            select(Row.id)
            .where(Row.state == "delivered", Row.delivered_at < func.now() - older_than)
            .limit(batch)
        )
        stmt = delete(Row).where(Row.id.in_(old.scalar_subquery()))
        async with translated("pruning delivered notifications"):
            return (await self._session.execute(stmt)).rowcount or 0  # type: ignore[attr-defined]

    async def counts(self) -> dict[str, Any]:
        """Rows by state (``failing``: pending rows whose last delivery failed), and the time
        the oldest pending row was written."""
        failing = and_(Row.state == "pending", Row.attempts > 0)
        stmt = select(
            func.count().filter(Row.state == "pending"),
            func.count().filter(failing),
            func.count().filter(Row.state == "delivered"),
            func.count().filter(Row.state == "dead"),
            func.min(Row.created_at).filter(Row.state == "pending"),
        )
        async with translated("counting the outbox"):
            pending, failing_n, delivered, dead, oldest = (await self._session.execute(stmt)).one()
        return {
            "pending": pending, "failing": failing_n, "delivered": delivered, "dead": dead,
            "oldest_pending": oldest,
        }  # fmt: skip

    async def asked_to_wait(self) -> datetime | None:
        """Until when Augur asked not to be called, if that is still ahead.

        Augur's latest answer decides: the last delivery attempt of the row whose
        ``queued_at`` (set by every attempt, whatever its outcome, and by a requeue) is the
        latest. Its ``retry_at`` (a ``Retry-After``, kept in the row's history) holds the
        senders until then; a notification taken, refused or failed without a
        ``Retry-After`` since then lifts it, and so does an operator's requeue (the row's
        ``queued_at`` is then later than its last attempt)."""
        last = Row.history.op("->")(literal(-1, Integer))
        at = last.op("->>")(literal("at", Text)).cast(DateTime(timezone=True))
        retry_at = last.op("->>")(literal("retry_at", Text)).cast(DateTime(timezone=True))
        requeued_since = and_(Row.requeued_at.is_not(None), Row.requeued_at > at)
        latest = (
            select(case((requeued_since, None), else_=retry_at).label("until"))
            .where(Row.attempts > 0)
            .order_by(Row.queued_at.desc())
            .limit(1)
            .subquery()
        )
        stmt = select(latest.c.until).where(latest.c.until > func.clock_timestamp())
        async with translated("reading how long Augur asked to wait"):
            until: datetime | None = (await self._session.execute(stmt)).scalar_one_or_none()
        return until

    async def clock(self) -> datetime:
        """The database's time now (the clock of every column here)."""
        async with translated("reading the database clock"):
            now: datetime = (
                await self._session.execute(select(func.clock_timestamp()))
            ).scalar_one()
        return now

    async def entries(
        self, *, states: Sequence[str], limit: int, tried: bool = False
    ) -> list[OutboxEntry]:
        """Rows in ``states`` (only those tried at least once if ``tried``), oldest first."""
        columns = (
            Row.id, Row.idempotency_key, Row.event, Row.imagery_finder_id, Row.dream_id,
            Row.flow_run_id, Row.state, Row.attempts, Row.last_error, Row.created_at,
            Row.queued_at,
        )  # fmt: skip
        stmt = (
            select(*columns)
            .where(Row.state.in_(list(states)), Row.attempts > (0 if tried else -1))
            .order_by(Row.created_at, Row.id)
            .limit(limit)
        )
        async with translated("listing the outbox"):
            return [OutboxEntry(*row) for row in (await self._session.execute(stmt)).all()]

    @staticmethod
    def _values(notification: Notification) -> dict[str, Any]:
        now = func.clock_timestamp()  # the write's time, close to its COMMIT: latency from here
        return {
            "event": literal(notification.event.value, Text),
            "imagery_finder_id": literal(notification.imagery_finder_pk, BigInteger),
            "dream_id": literal(notification.dream_pk, BigInteger),
            "flow_run_id": literal(notification.flow_run_id, Text),
            "payload": literal(notification.model_dump(mode="json"), JSONB),
            "created_at": now,
            "queued_at": now,
        }
