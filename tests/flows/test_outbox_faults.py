"""The outbox through the flow: a COMMIT whose answer is lost, Augur down then back, runs that
die without a word (a run left Pending by a dead worker too), dispatchers and flows delivering
at once.

A connection lost *during* COMMIT is made reliable: with ``synchronous_standby_names`` naming a
standby that does not exist, PostgreSQL writes the commit record, then waits for the standby
before answering (wait event ``SyncRep``); terminating the backend there leaves the transaction
committed and the client without an answer. A deferred constraint trigger that sleeps does the
opposite: the backend dies inside COMMIT before the commit record, and nothing lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State, StateType
from typer.testing import CliRunner

from noctis.augur import Notification, failed_key
from noctis.cli import app
from noctis.deployment import FULL_NAME, STUCK_CRASH_MESSAGE, register
from noctis.flows import outbox_dispatcher
from noctis.flows.outbox_dispatcher import dispatch_once
from noctis.outbox import DISPATCH_LANES
from noctis.settings import Settings, get_settings
from tests.support.augur_stub import AugurStub, Reply
from tests.support.factories import box
from tests.support.studies import (
    add_dream,
    add_finder,
    linked_ids,
    outbox_rows,
    reference_ids,
    run_study,
    scalar,
    seed_grid,
    task_runs,
)

pytestmark = pytest.mark.reliability


async def _study(admin: psycopg.AsyncConnection, n: int = 1) -> list[tuple[int, int, list[int]]]:
    await seed_grid(admin, n=600)
    dream = await add_dream(admin)
    studies = []
    for i in range(n):
        finder = await add_finder(admin, box(10.2 + i * 0.1, 44.2, 11.0 + i * 0.1, 45.0))
        studies.append((finder, dream, await reference_ids(admin, finder)))
    return studies


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


async def _wait_for(
    admin: psycopg.AsyncConnection, *, wait_event: str, within: float = 30.0
) -> int:
    """The pid of Noctis' backend once it waits on ``wait_event`` inside COMMIT."""
    for _ in range(int(within / 0.05)):
        pid = await scalar(
            admin,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'noctis' AND "
            "datname = current_database() AND wait_event = %s AND query ILIKE 'COMMIT%%' LIMIT 1",
            (wait_event,),
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no Noctis backend waiting on {wait_event} in COMMIT")


@contextlib.asynccontextmanager
async def _commits_wait_for_a_ghost_standby(
    admin: psycopg.AsyncConnection,
) -> AsyncIterator[None]:
    """Commits in this test's database wait (SyncRep) for a standby that never comes; every
    other database of the cluster commits locally. Undone on exit, whatever happens."""
    database = await scalar(admin, "SELECT current_database()")
    await admin.execute(psycopg.sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(
        psycopg.sql.Identifier(database)))  # fmt: skip
    await admin.execute("ALTER SYSTEM SET synchronous_commit = 'local'")
    await admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'noctis_ghost_standby'")
    await admin.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        await admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
        await admin.execute("ALTER SYSTEM RESET synchronous_commit")
        await admin.execute("SELECT pg_reload_conf()")


async def test_a_connection_lost_during_a_commit_that_landed_reports_its_counts(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [(finder, dream, expected)] = await _study(admin)
    async with _commits_wait_for_a_ghost_standby(admin):
        run = asyncio.create_task(run_study(finder, dream))
        pid = await _wait_for(admin, wait_event="SyncRep")
        assert await scalar(admin, "SELECT pg_terminate_backend(%s)", (pid,))
    state = await run

    assert state.is_completed(), state.message
    result = await state.aresult()
    assert (result.matched_count, result.new_count) == (len(expected), len(expected))  # not 0
    assert any("COMMIT landed although its answer was lost" in r.message for r in caplog.records)
    runs = await task_runs(state, expect=4)
    assert runs["link-matches"].run_count == 2
    assert await linked_ids(admin, finder, dream) == expected
    [row] = await outbox_rows(admin)
    assert row["state"] == "delivered"
    [note] = augur_stub.requests
    assert note.header("Idempotency-Key") == row["idempotency_key"]
    assert note.json["new_count"] == note.json["matched_count"] == len(expected)


async def test_a_connection_lost_during_a_commit_that_did_not_land_writes_once(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [(finder, dream, expected)] = await _study(admin)
    await admin.execute(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$"
    )
    await admin.execute(
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON notification_outbox "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
    )
    run = asyncio.create_task(run_study(finder, dream))
    pid = await _wait_for(admin, wait_event="PgSleep")
    assert await scalar(admin, "SELECT pg_terminate_backend(%s)", (pid,))
    await admin.execute("DROP TRIGGER slow_commit ON notification_outbox")  # before the retry
    state = await run

    assert state.is_completed(), state.message
    result = await state.aresult()
    assert (result.matched_count, result.new_count) == (len(expected), len(expected))
    assert not any("COMMIT landed" in r.message for r in caplog.records)
    assert (await task_runs(state, expect=4))["link-matches"].run_count == 2
    assert await linked_ids(admin, finder, dream) == expected
    [row] = await outbox_rows(admin)
    assert [r.header("Idempotency-Key") for r in augur_stub.requests] == [row["idempotency_key"]]


async def test_augur_down_then_back_one_pass_delivers_everything_pending(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _env(monkeypatch, NOCTIS_AUGUR_MAX_ATTEMPTS="2")
    studies = await _study(admin, n=5)
    augur_stub.fallback(503)  # down
    states = [await run_study(finder, dream) for finder, dream, _ in studies]
    assert all(s.is_failed() for s in states)
    assert all("waits in the outbox" in (s.message or "") for s in states)
    pending = await outbox_rows(admin)
    assert [r["state"] for r in pending] == ["pending"] * 5
    for finder, dream, expected in studies:  # the studies are recorded all the same
        assert await linked_ids(admin, finder, dream) == expected
    # Still down: a pass stops at its first failure (one per lane at most) and keeps them all.
    down = await dispatch_once(get_settings(), watch_runs=False)
    assert down.delivered == 0 and 1 <= down.retried <= DISPATCH_LANES
    assert down.stopped is not None and "HTTP 503" in down.stopped
    assert {r["state"] for r in await outbox_rows(admin)} == {"pending"}

    augur_stub.fallback(200)  # back
    report = await dispatch_once(get_settings(), watch_runs=False)
    assert report.delivered == 5 and report.stopped is None
    assert {r["state"] for r in await outbox_rows(admin)} == {"delivered"}
    taken = Counter(r.header("Idempotency-Key") for r in augur_stub.accepted())
    assert set(taken) == {r["idempotency_key"] for r in pending}
    assert set(taken.values()) == {1}
    for row in pending:  # what Augur took is the committed write, as written
        [taken_body] = [r.json for r in augur_stub.accepted()
                        if r.header("Idempotency-Key") == row["idempotency_key"]]  # fmt: skip
        assert taken_body == Notification.model_validate(row["payload"]).body()
        assert "error" not in taken_body and "removed_count" not in taken_body


async def _deployment_run(finder: int, dream: int, end: StateType, message: str) -> str:
    """A run of the registered deployment, forced into a final state as a dead worker's is."""
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(FULL_NAME)
        run = await client.create_flow_run_from_deployment(
            deployment.id, parameters={"imagery_finder_pk": finder, "dream_pk": dream}
        )
        await client.set_flow_run_state(
            run.id, State(type=StateType.RUNNING), force=True
        )  # fmt: skip
        await client.set_flow_run_state(
            run.id, State(type=end, name=end.value.title(), message=message), force=True
        )
    return str(run.id)


async def test_runs_that_die_are_announced_failed_once_through_the_prefect_api(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    await register(work_pool="noctis-outbox-test")
    [(finder, dream, _), (other, _, _)] = await _study(admin, n=2)
    crashed = await _deployment_run(finder, dream, StateType.CRASHED, "exit code -9")
    cancelled = await _deployment_run(other, dream, StateType.CANCELLED, "cancelled by Augur")
    unknown = await _deployment_run(987654, dream, StateType.CRASHED, "exit code -9")
    completed = await _deployment_run(finder, dream, StateType.COMPLETED, "All good")
    first = await dispatch_once(get_settings(), watch_runs=True)
    again = await dispatch_once(get_settings(), watch_runs=True)

    assert (first.announced, again.announced) == (2, 0)
    failed = {r.json["flow_run_id"]: r for r in augur_stub.accepted()}
    assert set(failed) == {crashed, cancelled}  # not the unknown finder's, not the completed
    assert unknown not in failed and completed not in failed
    note = failed[crashed]
    assert note.json["event"] == "imagery-finder-study.failed"
    assert note.header("Idempotency-Key") == failed_key(finder, dream, crashed)
    assert note.json["error"].startswith("The flow run ")
    assert note.json["error"].endswith(" ended Crashed: exit code -9")
    assert failed[cancelled].json["error"].endswith(" ended Cancelled: cancelled by Augur")
    assert len(augur_stub.requests) == 2  # the second pass sent nothing


async def test_two_dispatchers_and_the_flows_never_send_one_notification_under_two_keys(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _env(monkeypatch, NOCTIS_AUGUR_MAX_ATTEMPTS="2")
    studies = await _study(admin, n=8)
    augur_stub.dedupe = True
    augur_stub.script([503, Reply(stall=0.3), 500, 503, Reply(disconnect=True)] * 2)
    augur_stub.fallback(Reply(stall=0.05))
    flows = asyncio.gather(*(run_study(f, d) for f, d, _ in studies))
    settings = get_settings()

    async def dispatcher() -> None:
        while not flows.done():
            await dispatch_once(settings, watch_runs=False)
            await asyncio.sleep(0.05)

    await asyncio.gather(flows, dispatcher(), dispatcher())
    await dispatch_once(settings, watch_runs=False)  # whatever the last failures left

    rows = await outbox_rows(admin)
    assert len(rows) == len(studies) and {r["state"] for r in rows} == {"delivered"}
    keys_by_run: dict[str, set[str]] = {}
    bodies: dict[str, set[bytes]] = {}
    for request in augur_stub.requests:
        key = request.header("Idempotency-Key") or ""
        keys_by_run.setdefault(request.json["flow_run_id"], set()).add(key)
        bodies.setdefault(key, set()).add(request.body)
    assert all(len(keys) == 1 for keys in keys_by_run.values())  # one key per notification
    assert all(len(b) == 1 for b in bodies.values())  # one body per key
    assert {r["idempotency_key"] for r in rows} == set(bodies)
    taken = Counter(r.header("Idempotency-Key") for r in augur_stub.accepted())
    assert set(taken.values()) == {1}  # and Augur took each exactly once
    for finder, dream, expected in studies:
        assert await linked_ids(admin, finder, dream) == expected
    logging.getLogger(__name__).info("requests: %d", len(augur_stub.requests))


async def test_a_run_left_pending_by_a_dead_worker_is_crashed_and_announced(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    """A worker killed between taking a run (Pending) and starting its process leaves no
    heartbeat: the stuck-run automation crashes it (a 10 s window here), the dispatcher
    announces it."""
    await register(work_pool="noctis-outbox-test", zombie_after=timedelta(seconds=10))
    try:
        [(finder, dream, _)] = await _study(admin)
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(FULL_NAME)
            run = await client.create_flow_run_from_deployment(
                deployment.id, parameters={"imagery_finder_pk": finder, "dream_pk": dream}
            )
            await client.set_flow_run_state(run.id, State(type=StateType.PENDING), force=True)
            for _ in range(240):  # the automation's window, its evaluation, a loaded machine
                state = (await client.read_flow_run(run.id)).state
                if state is not None and state.is_final():
                    break
                await asyncio.sleep(0.5)
        assert state is not None and state.type is StateType.CRASHED
        assert state.message == STUCK_CRASH_MESSAGE.format(seconds=10)
        report = await dispatch_once(get_settings(), watch_runs=True)
        assert report.announced >= 1  # (the server may hold other tests' ended runs too)
        [note] = [r for r in augur_stub.accepted() if r.json["flow_run_id"] == str(run.id)]
        assert note.header("Idempotency-Key") == failed_key(finder, dream, str(run.id))
        assert note.json["error"].endswith("ended Crashed: " + state.message)
    finally:
        await register(work_pool="noctis-outbox-test")


async def test_a_pass_that_finds_augur_down_delivers_within_seconds_of_its_return(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import noctis.flows.outbox_dispatcher as dispatcher

    _env(monkeypatch, NOCTIS_AUGUR_MAX_ATTEMPTS="1")
    monkeypatch.setattr(dispatcher, "PROBE_EVERY", timedelta(seconds=0.5))
    studies = await _study(admin, n=3)
    augur_stub.stop()  # connections refused, as when Augur's host is down
    states = [await run_study(finder, dream) for finder, dream, _ in studies]
    assert all("waits in the outbox" in (s.message or "") for s in states)

    loop = asyncio.get_running_loop()
    lingering = asyncio.create_task(
        dispatch_once(get_settings(), watch_runs=False, linger=timedelta(seconds=60))
    )
    await asyncio.sleep(3)
    assert not lingering.done()  # still trying: Augur is down
    augur_stub.start()  # back, on the same address
    back = loop.time()
    report = await asyncio.wait_for(lingering, timeout=30)
    assert loop.time() - back < 5  # a probe or two, not the next pass
    assert report.delivered == 3 and report.stopped is None
    assert report.retried >= 2  # the first try and at least one probe met the refusal
    assert {r["state"] for r in await outbox_rows(admin)} == {"delivered"}
    assert len({r.header("Idempotency-Key") for r in augur_stub.accepted()}) == 3


async def test_a_lingering_pass_ends_when_its_time_is_up(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import noctis.flows.outbox_dispatcher as dispatcher

    _env(monkeypatch, NOCTIS_AUGUR_MAX_ATTEMPTS="1")
    monkeypatch.setattr(dispatcher, "PROBE_EVERY", timedelta(seconds=0.5))
    [(finder, dream, _)] = await _study(admin)
    augur_stub.fallback(503)
    await run_study(finder, dream)
    loop = asyncio.get_running_loop()
    began = loop.time()
    report = await dispatch_once(get_settings(), watch_runs=False, linger=timedelta(seconds=3))
    assert 3 <= loop.time() - began < 10
    assert report.delivered == 0 and report.stopped is not None and "HTTP 503" in report.stopped
    assert report.retried >= 3  # it kept trying
    assert {r["state"] for r in await outbox_rows(admin)} == {"pending"}


async def test_a_pass_delivers_when_the_prefect_api_is_down(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ended runs are read from the Prefect API first; when it is down, the pass still
    delivers what waits (it crashed with a traceback and delivered nothing; a review)."""
    _env(monkeypatch, NOCTIS_AUGUR_MAX_ATTEMPTS="2")
    [(finder, dream, _)] = await _study(admin, n=1)
    augur_stub.fallback(503)
    assert (await run_study(finder, dream)).is_failed()
    augur_stub.fallback(200)

    async def down(since: object) -> list[object]:
        raise httpx.ConnectError("All connection attempts failed")

    monkeypatch.setattr(outbox_dispatcher, "ended_runs", down)
    report = await dispatch_once(get_settings(), watch_runs=True)
    assert report.delivered == 1 and report.announced == 0
    assert report.runs_unread == "ConnectError: All connection attempts failed"
    assert {r["state"] for r in await outbox_rows(admin)} == {"delivered"}


async def test_a_retry_after_past_the_budget_holds_every_pass_until_then(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Augur asks for an hour, more than the 1 s retry budget: the flow leaves the row to the
    # outbox, and no pass calls Augur before then (before, each pass did, and a lingering pass
    # every PROBE_EVERY); once the time has come, one pass delivers it.
    import noctis.flows.outbox_dispatcher as dispatcher

    _env(monkeypatch, NOCTIS_AUGUR_MAX_RETRY_SECONDS="1")
    monkeypatch.setattr(dispatcher, "PROBE_EVERY", timedelta(seconds=0.2))
    [(finder, dream, _)] = await _study(admin)
    augur_stub.script([Reply(503, headers={"Retry-After": "3600"})])
    augur_stub.fallback(200)
    state = await run_study(finder, dream)
    assert state.is_failed() and "asked to wait 3600 s (Retry-After)" in (state.message or "")
    [row] = await outbox_rows(admin)
    assert row["state"] == "pending" and len(augur_stub.requests) == 1
    asked = await scalar(
        admin,
        "SELECT (history -> -1 ->> 'retry_at')::timestamptz - (history -> -1 ->> 'at')::timestamptz"
        " FROM notification_outbox",
    )
    assert abs(asked - timedelta(hours=1)) < timedelta(seconds=1)  # two clock reads apart

    held = await dispatch_once(get_settings(), watch_runs=False, linger=timedelta(seconds=1))
    assert held.delivered == 0 and held.retried == 0
    assert held.waiting_until is not None
    assert abs(held.waiting_until - datetime.now(UTC) - timedelta(hours=1)) < timedelta(minutes=1)
    assert held.stopped is not None and "(Retry-After): nothing sent" in held.stopped
    assert len(augur_stub.requests) == 1  # not called again, lingering included
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["outbox", "status", "--json"])
    assert shown.exit_code == 0, shown.output
    waiting = json.loads(shown.stdout)["counts"]["waiting_until"]
    assert datetime.fromisoformat(waiting) == held.waiting_until

    # The hour has passed (the asked time moved into the past): the next pass delivers.
    await admin.execute(
        "UPDATE notification_outbox SET history = jsonb_set(history, '{-1,retry_at}',"
        " to_jsonb(clock_timestamp() - interval '1 second'))"
    )
    report = await dispatch_once(get_settings(), watch_runs=False)
    assert report.delivered == 1 and report.stopped is None and report.waiting_until is None
    assert len(augur_stub.requests) == 2
    assert [r["state"] for r in await outbox_rows(admin)] == ["delivered"]
