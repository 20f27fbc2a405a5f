"""The notification outbox on a real PostGIS, against a loopback Augur: written with the study,
keyed by the update, taken FOR UPDATE SKIP LOCKED, dead-lettered with the reason, pruned."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from noctis import outbox
from noctis.augur import (
    AugurClient,
    Notification,
    NotificationEvent,
    RetryPolicy,
    completed_key,
    failed_key,
)
from noctis.models import ArchiveLookupItem, NotificationOutbox
from noctis.outbox import EndedRun
from noctis.repositories import Attempt, OutboxMessage
from noctis.study import CheckedStudy, check_study, link_study
from noctis.unit_of_work import UnitOfWork
from tests.support.augur_stub import AugurStub, Reply
from tests.support.factories import add_dream, add_finder, add_item, square

RUN = "6d2c4f1a-0b3e-4c5d-8e9f-102132435465"
QUICK = RetryPolicy(max_attempts=2, max_retry_seconds=2.0, backoff_base=0.01, backoff_max=0.05)
DAY = timedelta(days=1)
REJECTED = "AugurRejected: Augur rejected the imagery-finder-study.completed for dream 1 with HTTP"

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def augur(augur_stub: AugurStub) -> AsyncIterator[AugurClient]:
    client = AugurClient(
        base_url=augur_stub.url, connect_timeout=1, timeout=2, retry=QUICK, token=None
    )
    async with client:
        yield client


def _opener(factory: Factory) -> outbox.OpenUnitOfWork:
    return lambda: UnitOfWork(factory)


async def _studies(session: AsyncSession, factory: Factory, n: int = 1) -> list[CheckedStudy]:
    dream = await add_dream(session)
    finders = [await add_finder(session, square(10 + i, 45, 0.5)) for i in range(n)]
    for i in range(n):
        await add_item(session, square(10 + i, 45, 0.2))
        await add_item(session, square(10.3 + i, 45, 0.2))
    await session.commit()
    async with UnitOfWork(factory) as uow:
        return [await check_study(uow, finder_id=f.id, dream_id=dream.id) for f in finders]


async def _link(factory: Factory, study: CheckedStudy, run: str = RUN) -> OutboxMessage:
    async with UnitOfWork(factory) as uow:
        linked = await link_study(uow, study, announce_as=run)
    assert linked.message is not None
    return linked.message


async def _rows(session: AsyncSession) -> list[NotificationOutbox]:
    session.expire_all()
    return list(await session.scalars(select(NotificationOutbox).order_by(NotificationOutbox.id)))


# ------------------------------------------------------------------------ written with the study


async def test_the_completed_is_committed_with_the_rows_and_keyed_by_the_update(
    session: AsyncSession, session_factory: Factory
) -> None:
    [study] = await _studies(session, session_factory)
    async with UnitOfWork(session_factory) as uow:
        linked = await link_study(uow, study, announce_as=RUN)
    [row] = await _rows(session)
    assert linked.message is not None and linked.message.id == row.id
    assert (linked.new, linked.total) == (2, 2)
    assert row.idempotency_key == completed_key(study.finder_id, study.dream_id, row.id)
    assert row.idempotency_key == linked.message.key
    assert row.state == "pending" and row.attempts == 0 and row.history == []
    notification = Notification.model_validate(row.payload)
    body = notification.body()  # what Augur will receive: no error, no removed_count
    assert {k: v for k, v in body.items() if k != "coverage"} == {
        "event": "imagery-finder-study.completed",
        "dream_pk": study.dream_id,
        "imagery_finder_pk": study.finder_id,
        "flow_run_id": RUN,
        "matched_count": 2,
        "new_count": 2,
        "plan_scenes": None,  # no planner given here (the flow passes noctis.plans.plan_in_link)
        "plan_coverage": None,
    }
    assert notification.coverage == linked.coverage and 0 < (linked.coverage or 0) < 1


async def test_rows_and_notification_roll_back_together(
    session: AsyncSession, session_factory: Factory
) -> None:
    [study] = await _studies(session, session_factory)

    async def no_commit() -> None:
        raise ConnectionResetError("the connection dropped before COMMIT")

    async with UnitOfWork(session_factory) as uow:
        uow.commit = no_commit  # type: ignore[method-assign]
        with pytest.raises(ConnectionResetError):
            await link_study(uow, study, announce_as=RUN)
    assert await _rows(session) == []
    assert await session.scalar(select(func.count(ArchiveLookupItem.id))) == 0


async def test_a_retry_after_a_landed_commit_reports_the_committed_counts(
    session: AsyncSession, session_factory: Factory
) -> None:
    [study] = await _studies(session, session_factory)
    first = await _link(session_factory, study)
    async with UnitOfWork(session_factory) as uow:  # the same run again: its COMMIT landed
        again = await link_study(uow, study, announce_as=RUN)
    assert again.replayed and (again.new, again.total) == (2, 2)  # not (0, 2)
    assert again.message is not None and again.message.key == first.key
    assert len(await _rows(session)) == 1
    async with UnitOfWork(session_factory) as uow:  # another run: a new update, a new key
        rerun = await link_study(uow, study, announce_as="another-run")
    assert not rerun.replayed and (rerun.new, rerun.total) == (0, 2)
    assert rerun.message is not None and rerun.message.key != first.key


async def test_the_failed_key_in_sql_is_the_python_one(
    session: AsyncSession, session_factory: Factory
) -> None:
    [study] = await _studies(session, session_factory)
    failure = Notification(
        event=NotificationEvent.FAILED,
        dream_pk=study.dream_id,
        imagery_finder_pk=study.finder_id,
        flow_run_id=RUN,
        error="boom",
    )
    async with UnitOfWork(session_factory) as uow:
        message = await outbox.enqueue_failure(uow, failure)
    assert message is not None
    assert message.key == failed_key(study.finder_id, study.dream_id, RUN)
    async with UnitOfWork(session_factory) as uow:  # once per run
        again = await outbox.enqueue_failure(uow, failure)
    assert again is not None and again.id == message.id
    assert len(await _rows(session)) == 1


async def test_a_run_whose_update_committed_is_never_announced_failed(
    session: AsyncSession, session_factory: Factory
) -> None:
    [study] = await _studies(session, session_factory)
    completed = await _link(session_factory, study)
    failure = Notification(
        event=NotificationEvent.FAILED,
        dream_pk=study.dream_id,
        imagery_finder_pk=study.finder_id,
        flow_run_id=RUN,
        error="the summary failed after COMMIT",
    )
    async with UnitOfWork(session_factory) as uow:
        outcome = await outbox.enqueue_failure(uow, failure)
    assert outcome is not None and outcome.key == completed.key  # the completed stands
    assert [r.event for r in await _rows(session)] == ["imagery-finder-study.completed"]


# ------------------------------------------------------------------------------------ delivery


async def test_delivery_records_the_history_and_happens_once(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    [study] = await _studies(session, session_factory)
    message = await _link(session_factory, study)
    augur_stub.script([503, 201])
    opener = _opener(session_factory)
    done = await outbox.deliver(opener, augur, message.id, by="test", give_up_after=DAY)
    assert done.outcome == "delivered" and done.receipt is not None
    again = await outbox.deliver(opener, augur, message.id, by="test", give_up_after=DAY)
    assert again.outcome == "skipped"  # delivered: nothing sent twice
    assert [r.header("Idempotency-Key") for r in augur_stub.requests] == [message.key] * 2
    [row] = await _rows(session)
    assert row.state == "delivered" and row.delivered_at is not None and row.attempts == 1
    [entry] = row.history
    assert entry["by"] == "test" and entry["outcome"] == "delivered"
    assert entry["status"] == 201 and entry["http_attempts"] == 2


async def test_a_row_a_sender_holds_is_skipped_by_every_other(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    first, second = await _studies(session, session_factory, n=2)
    held = await _link(session_factory, first, run="run-1")
    other = await _link(session_factory, second, run="run-2")
    opener = _opener(session_factory)
    async with UnitOfWork(session_factory) as holder:
        assert (await holder.outbox.claim(held.id)) is not None  # a sender, mid-delivery
        skipped = await outbox.deliver(opener, augur, held.id, by="flow", give_up_after=DAY)
        report = await outbox.dispatch(opener, augur, by="dispatcher", give_up_after=DAY)
    assert skipped.outcome == "skipped"
    assert report.keys == [other.key]  # the dispatcher took the other row only
    assert [r.header("Idempotency-Key") for r in augur_stub.requests] == [other.key]


async def test_rows_sent_together_are_claimed_at_once_skip_held_ones_and_keep_their_keys(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    studies = await _studies(session, session_factory, n=4)
    messages = [await _link(session_factory, s, run=f"run-{i}") for i, s in enumerate(studies)]
    held, done_before, *rest = messages
    opener = _opener(session_factory)
    assert (
        await outbox.deliver(opener, augur, done_before.id, by="flow", give_up_after=DAY)
    ).outcome == "delivered"
    augur_stub.reset()
    ids = [m.id for m in messages]
    async with UnitOfWork(session_factory) as holder:
        assert (await holder.outbox.claim(held.id)) is not None  # a sender, mid-delivery
        sent = await outbox.deliver_many(opener, augur, ids, by="pass", give_up_after=DAY)
    # The held row and the delivered one are left out; the others go, each under its own key.
    assert [(d.outcome, d.message and d.message.id) for d in sent] == [
        ("delivered", m.id) for m in rest
    ]
    assert sorted(r.header("Idempotency-Key") or "" for r in augur_stub.requests) == sorted(
        m.key for m in rest
    )
    rows = {r.id: r for r in await _rows(session)}
    assert rows[held.id].state == "pending" and rows[held.id].attempts == 0
    for m in rest:
        assert rows[m.id].state == "delivered" and rows[m.id].attempts == 1
        assert [e["by"] for e in rows[m.id].history] == ["pass"]
    # Augur down: every row is tried once, recorded, and waits for the dispatcher.
    augur_stub.fallback(503)
    down = await outbox.deliver_many(opener, augur, ids, by="pass", give_up_after=DAY)
    assert [(d.outcome, d.message and d.message.id) for d in down] == [("retry", held.id)]
    row = {r.id: r for r in await _rows(session)}[held.id]
    assert (row.state, row.attempts) == ("pending", 1)
    assert await outbox.deliver_many(opener, augur, [], by="pass", give_up_after=DAY) == []


async def test_a_rejected_notification_is_dead_at_once_with_augurs_words_and_requeued(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    [study] = await _studies(session, session_factory)
    message = await _link(session_factory, study)
    augur_stub.script([Reply(422, json={"detail": "dream 1 is archived"})])
    opener = _opener(session_factory)
    done = await outbox.deliver(opener, augur, message.id, by="test", give_up_after=DAY)
    assert done.outcome == "dead"
    [row] = await _rows(session)
    assert row.state == "dead" and row.attempts == 1
    assert row.last_error == (
        "AugurRejected: Augur rejected the imagery-finder-study.completed for dream 1 with "
        "HTTP 422: dream 1 is archived"
    )
    status = await outbox.status(opener)
    assert status.counts["dead"] == 1 and [e.id for e in status.dead] == [message.id]
    # Nothing retries a dead row until someone requeues it.
    assert (await outbox.dispatch(opener, augur, by="d", give_up_after=DAY)).delivered == 0
    assert await outbox.requeue(opener, [message.id]) == 1
    report = await outbox.dispatch(opener, augur, by="d", give_up_after=DAY)
    assert report.keys == [message.key]
    assert len(augur_stub.requests) == 2


async def test_unavailable_augur_keeps_it_pending_then_dead_after_the_budget(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    [study] = await _studies(session, session_factory)
    message = await _link(session_factory, study)
    augur_stub.fallback(503)
    opener = _opener(session_factory)
    done = await outbox.deliver(opener, augur, message.id, by="flow", give_up_after=DAY)
    assert done.outcome == "retry" and done.error is not None
    assert "waits in the outbox" in str(done.error) and message.key in str(done.error)
    [row] = await _rows(session)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error is not None and "last cause: HTTP 503" in row.last_error
    status = await outbox.status(opener)
    assert (status.counts["pending"], status.counts["failing"]) == (1, 1)
    # Once the budget is spent, the next failure makes it dead, the reason kept.
    spent = await outbox.deliver(opener, augur, message.id, by="d", give_up_after=timedelta(0))
    assert spent.outcome == "dead"
    [row] = await _rows(session)
    assert row.state == "dead" and "HTTP 503" in (row.last_error or "")
    assert [e["outcome"] for e in row.history] == ["unavailable", "unavailable"]


async def test_a_pass_stops_at_the_first_failure_and_gives_up_on_expired_rows(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    studies = await _studies(session, session_factory, n=4)
    for i, study in enumerate(studies):
        await _link(session_factory, study, run=f"run-{i}")
    augur_stub.fallback(Reply(disconnect=True))
    opener = _opener(session_factory)
    report = await outbox.dispatch(opener, augur, by="d", give_up_after=DAY, lanes=1)
    assert (report.delivered, report.retried) == (0, 1)
    assert report.stopped is not None and "RemoteProtocolError" in report.stopped
    assert len(augur_stub.requests) == QUICK.max_attempts  # one row tried, not four
    report = await outbox.dispatch(opener, augur, by="d", give_up_after=timedelta(0), lanes=1)
    assert (report.dead, report.given_up) == (1, 3)  # one tried; three untried, past a 0 budget
    rows = await _rows(session)
    assert {r.state for r in rows} == {"dead"}
    gave_up = [r for r in rows if "gave up after 0:00:00 without delivery" in (r.last_error or "")]
    assert len(gave_up) == 3
    assert all("last cause:" in (r.last_error or "") for r in gave_up)


async def test_answers_that_cannot_be_decoded_are_recorded_and_the_queue_moves_on(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    first, second = await _studies(session, session_factory, n=2)
    await _link(session_factory, first, run="run-1")
    healthy = await _link(session_factory, second, run="run-2")
    # A proxy's 502 page whose Content-Encoding lies about its body, for one whole retry budget.
    garbled = Reply(502, text="<html>bad gateway</html>", headers={"Content-Encoding": "gzip"})
    augur_stub.script([garbled] * QUICK.max_attempts)
    opener = _opener(session_factory)
    report = await outbox.dispatch(opener, augur, by="d", give_up_after=DAY, lanes=1)
    assert (report.delivered, report.retried) == (0, 1)
    assert report.stopped is not None and "could not be decoded (DecodingError" in report.stopped
    tried = (await _rows(session))[0]
    assert (tried.state, tried.attempts) == ("pending", 1)
    assert "DecodingError" in (tried.last_error or "")
    report = await outbox.dispatch(opener, augur, by="d", give_up_after=DAY, lanes=1)
    assert report.keys == [healthy.key, tried.idempotency_key]


async def test_a_rejection_holding_a_nul_is_recorded_dead_and_the_pass_goes_on(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    """PostgreSQL's text and jsonb refuse NUL (and a lone surrogate): an attempt whose error
    held one could not be recorded, and every pass stopped at that row."""
    first, second, third = await _studies(session, session_factory, n=3)
    for i, study in enumerate((first, second, third)):
        await _link(session_factory, study, run=f"run-{i}")
    augur_stub.script(
        [
            Reply(400, text="bad request\x00\x1f\x8b"),
            Reply(422, json={"detail": "lone \ud800 surrogate"}),
        ]
    )
    opener = _opener(session_factory)
    report = await outbox.dispatch(opener, augur, by="d", give_up_after=DAY, lanes=1)
    assert (report.dead, report.delivered, report.stopped) == (2, 1, None)
    dead = [r for r in await _rows(session) if r.state == "dead"]
    assert [r.last_error for r in dead] == [
        f"{REJECTED} 400: bad request\ufffd\x1f\x8b",
        f"{REJECTED} 422: lone \ufffd surrogate",
    ]
    assert [r.history[-1]["error"] for r in dead] == [r.last_error for r in dead]


async def test_a_row_tried_in_vain_goes_to_the_back_of_the_queue(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    first, second = await _studies(session, session_factory, n=2)
    poison = await _link(session_factory, first, run="run-1")
    healthy = await _link(session_factory, second, run="run-2")
    augur_stub.script([503, 503])
    opener = _opener(session_factory)
    report = await outbox.dispatch(opener, augur, by="d", give_up_after=DAY, lanes=1)
    assert report.retried == 1 and report.delivered == 0
    report = await outbox.dispatch(opener, augur, by="d", give_up_after=DAY, lanes=1)
    assert report.keys == [healthy.key, poison.key]  # the healthy row first this time


async def test_a_pass_sends_a_row_once_even_when_its_delivery_cannot_be_recorded(
    session: AsyncSession,
    session_factory: Factory,
    engine: AsyncEngine,
    admin: psycopg.AsyncConnection,
    augur: AugurClient,
    augur_stub: AugurStub,
) -> None:
    """Atlas ends a sender's transaction while Augur takes its time to answer
    (idle_in_transaction_session_timeout): Augur took the row, the outbox cannot record so, the
    row stays pending with its old queued_at. The pass used to claim it again at once, and send
    it again, without end; now the next pass records it, sending it under the same key."""
    first, second = await _studies(session, session_factory, n=2)
    messages = [
        await _link(session_factory, s, run=f"run-{i}") for i, s in enumerate((first, second))
    ]
    await session.close()
    database = engine.url.database
    await admin.execute(
        f'ALTER DATABASE "{database}" SET idle_in_transaction_session_timeout = 1000'
    )
    await engine.dispose()  # new connections take the setting
    augur_stub.fallback(Reply(stall=1.5))  # Augur takes each, after the session is gone
    opener = _opener(session_factory)
    async with asyncio.timeout(15):
        report = await outbox.dispatch(opener, augur, by="d", give_up_after=DAY, lanes=1)
    keys = [m.key for m in messages]
    assert [r.header("Idempotency-Key") for r in augur_stub.requests if r.taken] == keys
    assert report.keys == keys and report.stopped is None
    assert {(r.state, r.attempts) for r in await _rows(session)} == {("pending", 0)}
    await admin.execute(f'ALTER DATABASE "{database}" RESET idle_in_transaction_session_timeout')
    await engine.dispose()
    augur_stub.fallback(Reply(409))  # the next pass: Augur has them already
    report = await outbox.dispatch(opener, augur, by="d", give_up_after=DAY, lanes=1)
    assert report.keys == keys
    assert [r.header("Idempotency-Key") for r in augur_stub.requests] == keys + keys
    assert {(r.state, r.attempts) for r in await _rows(session)} == {("delivered", 1)}


async def test_prune_deletes_only_delivered_rows_older_than_the_retention(
    session: AsyncSession, session_factory: Factory, augur: AugurClient
) -> None:
    studies = await _studies(session, session_factory, n=3)
    messages = [await _link(session_factory, s, run=f"run-{i}") for i, s in enumerate(studies)]
    opener = _opener(session_factory)
    for message in messages[:2]:
        await outbox.deliver(opener, augur, message.id, by="d", give_up_after=DAY)
    await session.execute(
        update(NotificationOutbox)
        .where(NotificationOutbox.id == messages[0].id)
        .values(delivered_at=func.now() - text("interval '8 days'"))
    )
    await session.commit()
    assert await outbox.prune(opener, older_than=timedelta(days=7)) == 1
    assert [r.id for r in await _rows(session)] == [m.id for m in messages[1:]]


async def test_ended_runs_are_announced_once_and_only_without_an_outcome(
    session: AsyncSession, session_factory: Factory
) -> None:
    first, second = await _studies(session, session_factory, n=2)
    await _link(session_factory, first, run="committed-then-crashed")

    def ended(run: str, finder: int, state: str = "Crashed") -> EndedRun:
        return EndedRun(run, f"finder-{finder}", finder, second.dream_id, state, "exit -9")

    runs = [
        ended("committed-then-crashed", first.finder_id),
        ended("crashed", second.finder_id),
        ended("cancelled", second.finder_id, "Cancelled"),
        ended("unknown-finder", 987654, "Failed"),
    ]
    opener = _opener(session_factory)
    week_ago = datetime.now(UTC) - timedelta(days=7)
    written = await outbox.announce_ended_runs(opener, runs, started_after=week_ago)
    again = await outbox.announce_ended_runs(opener, runs, started_after=week_ago)
    assert [m.notification.flow_run_id for m in written] == ["crashed", "cancelled"]
    assert again == []
    error = written[0].notification.error
    assert error == f"The flow run finder-{second.finder_id} ended Crashed: exit -9"
    assert Counter(r.event for r in await _rows(session)) == {
        "imagery-finder-study.completed": 1,
        "imagery-finder-study.failed": 2,
    }


async def test_a_run_is_never_announced_failed_after_its_delivered_completed_was_pruned(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    """The run delivers its ``completed`` right after COMMIT, then hangs and ends Crashed later.
    A retention period after that delivery the row is pruned; the run, started before its
    delivery, is then outside the look-back, so the dispatcher does not announce it under
    another key. A run that never started, or started within the look-back, is announced."""
    retention = timedelta(hours=168)
    first, second = await _studies(session, session_factory, n=2)
    started = datetime.now(UTC)
    completed = await _link(session_factory, first, run=RUN)
    opener = _opener(session_factory)
    delivered = await outbox.deliver(opener, augur, completed.id, by="flow", give_up_after=DAY)
    assert delivered.outcome == "delivered"
    # A retention period and a minute go by: shift every time of the scenario back instead.
    aged = retention + timedelta(minutes=1)
    await session.execute(
        update(NotificationOutbox).values(delivered_at=NotificationOutbox.delivered_at - aged)
    )
    await session.commit()
    started -= aged
    assert await outbox.prune(opener, older_than=retention) == 1
    since = datetime.now(UTC) - outbox.look_back(retention)
    assert since > datetime.now(UTC) - retention + timedelta(hours=1)  # a margin for the clocks
    crashed = EndedRun(RUN, "f", first.finder_id, first.dream_id, "Crashed", None, started)
    never_started = EndedRun("pending-run", "f", second.finder_id, second.dream_id, "Crashed", None)
    just = since + timedelta(seconds=1)
    recent = EndedRun("recent-run", "f", second.finder_id, second.dream_id, "Failed", None, just)
    runs = [crashed, never_started, recent]
    written = await outbox.announce_ended_runs(opener, runs, started_after=since)
    assert [m.notification.flow_run_id for m in written] == ["pending-run", "recent-run"]
    await outbox.dispatch(opener, augur, by="d", give_up_after=DAY)
    failed = [r.json["flow_run_id"] for r in augur_stub.requests if "failed" in r.json["event"]]
    assert RUN not in failed and len(failed) == 2


async def test_a_failure_is_written_under_a_generic_plan_too(
    session: AsyncSession, session_factory: Factory
) -> None:
    """A connection's sixth execution of a statement may take a generic plan; the ON CONFLICT
    of a failure names a partial unique index, which PostgreSQL can infer only when the
    predicate is a literal (a bind parameter failed every pass of a long-lived dispatcher in
    the chaos run). Forced generic here, with repeats and a conflict."""
    (study,) = await _studies(session, session_factory)
    written = []
    for i in range(7):
        async with UnitOfWork(session_factory) as uow:
            await uow.session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
            run = "generic-plan" if i % 2 else f"generic-plan-{i}"
            message = await uow.outbox.add_failure(
                Notification(
                    event=NotificationEvent.FAILED,
                    dream_pk=study.dream_id,
                    imagery_finder_pk=study.finder_id,
                    flow_run_id=run,
                    error="ended Crashed",
                )
            )
            await uow.commit()
        assert message is not None and message.notification.flow_run_id == run
        written.append(message.id)
    assert len(set(written)) == 5  # 4 runs of their own, and one written once for 3 calls
    assert Counter(r.flow_run_id for r in await _rows(session))["generic-plan"] == 1


async def test_two_dispatchers_and_the_senders_of_each_row_never_send_one_row_twice(
    session: AsyncSession, session_factory: Factory, augur: AugurClient, augur_stub: AugurStub
) -> None:
    studies = await _studies(session, session_factory, n=12)
    messages = [await _link(session_factory, s, run=f"run-{i}") for i, s in enumerate(studies)]
    augur_stub.fallback(Reply(stall=0.05))  # slow enough for the senders to meet
    opener = _opener(session_factory)
    reports, deliveries = await asyncio.gather(
        asyncio.gather(
            outbox.dispatch(opener, augur, by="dispatcher-1", give_up_after=DAY),
            outbox.dispatch(opener, augur, by="dispatcher-2", give_up_after=DAY),
        ),
        asyncio.gather(
            *(outbox.deliver(opener, augur, m.id, by="flow", give_up_after=DAY) for m in messages)
        ),
    )
    sent = Counter(r.header("Idempotency-Key") for r in augur_stub.requests)
    assert set(sent) == {m.key for m in messages}
    assert set(sent.values()) == {1}  # every row sent once, by exactly one sender
    delivered = sum(r.delivered for r in reports) + sum(
        d.outcome == "delivered" for d in deliveries
    )
    assert delivered == len(messages)
    assert {r.state for r in await _rows(session)} == {"delivered"}


# ---------------------------------------------------------------- Augur's Retry-After, held


async def _answer(
    factory: Factory, message_id: int, outcome: str, retry_after: float | None = None
) -> None:
    """Record a delivery of ``message_id`` as if a sender had made it (claimed, answered)."""
    async with UnitOfWork(factory) as uow:
        assert await uow.outbox.claim(message_id) is not None
        attempt = Attempt(by="test", outcome=outcome, seconds=0.1, retry_after=retry_after)
        await uow.outbox.record(message_id, attempt, give_up_after=DAY)
        await uow.commit()


async def _asked(factory: Factory) -> datetime | None:
    async with UnitOfWork(factory) as uow:
        return await uow.outbox.asked_to_wait()


async def test_augurs_latest_answer_decides_the_wait(
    session: AsyncSession, session_factory: Factory
) -> None:
    studies = await _studies(session, session_factory, n=3)
    a, b, c = [await _link(session_factory, s, run=f"run-{i}") for i, s in enumerate(studies)]
    assert await _asked(session_factory) is None  # nothing asked yet
    await _answer(session_factory, a.id, "unavailable", retry_after=600)
    until = await _asked(session_factory)
    assert until is not None
    assert timedelta(seconds=590) < until - datetime.now(UTC) <= timedelta(seconds=600)
    # An answer without Retry-After to a later delivery lifts it (Augur's latest word)...
    await _answer(session_factory, b.id, "unavailable")
    assert await _asked(session_factory) is None
    # ... and so does a notification Augur takes, though the row that was told to wait is
    # still pending.
    await _answer(session_factory, a.id, "unavailable", retry_after=600)
    assert await _asked(session_factory) is not None
    await _answer(session_factory, c.id, "delivered")
    assert await _asked(session_factory) is None
    # A wait is kept when its row is given up, and lifted when an operator requeues it.
    await _answer(session_factory, a.id, "unavailable", retry_after=600)
    async with UnitOfWork(session_factory) as uow:
        assert await uow.outbox.give_up_expired(give_up_after=timedelta(0), cause="test") == 2
        await uow.commit()
    assert await _asked(session_factory) is not None
    assert await outbox.requeue(_opener(session_factory), [a.id]) == 1
    assert await _asked(session_factory) is None


async def test_a_wait_is_held_at_most_the_give_up_window(
    session: AsyncSession, session_factory: Factory
) -> None:
    [study] = await _studies(session, session_factory)
    message = await _link(session_factory, study)
    async with UnitOfWork(session_factory) as uow:
        assert await uow.outbox.claim(message.id) is not None
        attempt = Attempt(by="test", outcome="unavailable", seconds=0.1, retry_after=1e300)
        await uow.outbox.record(message.id, attempt, give_up_after=timedelta(hours=2))
        await uow.commit()
    until = await _asked(session_factory)
    assert until is not None
    assert timedelta(hours=1, minutes=59) < until - datetime.now(UTC) <= timedelta(hours=2)
