"""Database faults: a connection killed mid-statement, Atlas down, a runaway statement.

A fault must roll the transaction back (nothing half-written), be retried when it is
transient, and end as a clear failure (naming Atlas and the reason, never a password) when it
is not or when the retries are spent.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text

from noctis.db import sync_session, translated
from noctis.devtools.localdb import free_port
from noctis.errors import DatabaseError, DatabaseUnavailable, is_retryable
from noctis.runtime import open_runtime
from noctis.settings import Settings, get_settings
from noctis.study import check_study
from tests.support.augur_stub import AugurStub
from tests.support.factories import box
from tests.support.studies import (
    add_dream,
    add_finder,
    admin_dsn,
    linked_ids,
    lookup_count,
    noctis_backends,
    reference_ids,
    run_study,
    scalar,
    seed_grid,
    task_runs,
    wait_for_backend,
)

pytestmark = pytest.mark.reliability


DB_PASSWORD = "atlas-pw-4b9d2e7f"  # a fake, searched for in every message


async def _study(admin: psycopg.AsyncConnection) -> tuple[int, int, list[int]]:
    await seed_grid(admin, n=1_000)
    dream = await add_dream(admin)
    finder = await add_finder(admin, box(10.5, 44.5, 11.5, 45.5), start="2024-01-01")
    expected = await reference_ids(admin, finder)
    assert len(expected) > 100
    return finder, dream, expected


async def test_backend_terminated_mid_insert_rolls_back_and_the_link_task_retries(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
) -> None:
    finder, dream, expected = await _study(admin)
    # Another transaction inserts the study's last row and holds it uncommitted: Noctis'
    # INSERT ... ON CONFLICT writes its other rows, then waits on that one (mid-statement).
    blocker = await psycopg.AsyncConnection.connect(admin_dsn(study_env))
    await blocker.execute(
        "INSERT INTO archive_lookup_item (dream_id, imagery_finder_id, archive_item_id)"
        " VALUES (%s, %s, %s)",
        (dream, finder, expected[-1]),
    )
    run = asyncio.create_task(run_study(finder, dream))
    try:
        pid = await wait_for_backend(admin, query_like="%INSERT INTO archive_lookup_item%")
        wrote = await scalar(
            admin, "SELECT backend_xid IS NOT NULL FROM pg_stat_activity WHERE pid = %s", (pid,)
        )
        assert wrote, "the link transaction had not written anything yet"
        assert await scalar(admin, "SELECT pg_terminate_backend(%s)", (pid,))
        await asyncio.sleep(0.2)
        assert await lookup_count(admin) == 0  # the killed transaction left nothing
    finally:
        await blocker.rollback()  # the retry (1 s later) then finds no conflict
        await blocker.close()
    state = await run

    assert state.is_completed(), state.message
    result = await state.aresult()
    assert await linked_ids(admin, finder, dream) == expected  # exact: nothing lost or doubled
    assert (result.matched_count, result.new_count) == (len(expected), len(expected))
    runs = await task_runs(state, expect=4)
    assert runs["link-matches"].run_count == 2  # retry_condition_fn saw a transient error
    assert runs["check-study"].run_count == 1
    (note,) = [r.json for r in augur_stub.requests]
    assert note["event"] == "imagery-finder-study.completed"
    assert note["new_count"] == note["matched_count"] == len(expected)


async def test_a_connection_killed_while_idle_in_the_pool_is_replaced(
    atlas_settings: Settings, admin: psycopg.AsyncConnection
) -> None:
    finder, dream, _ = await _study(admin)
    async with open_runtime(atlas_settings) as runtime:
        async with runtime.unit_of_work() as uow:
            await check_study(uow, finder_id=finder, dream_id=dream)
        killed = await scalar(
            admin,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'noctis' AND datname = current_database()",
        )
        assert killed >= 1
        async with runtime.unit_of_work() as uow:  # pool_pre_ping: a fresh connection
            study = await check_study(uow, finder_id=finder, dream_id=dream)
        assert study.finder_id == finder
    assert await noctis_backends(admin) == 0


@pytest.fixture
def atlas_down(study_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """ATLAS_DB_URL at a closed port, with a password in it."""
    url = f"postgresql://noctis:{DB_PASSWORD}@127.0.0.1:{free_port()}/augur"
    monkeypatch.setenv("ATLAS_DB_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


async def test_atlas_down_at_start_is_retried_with_backoff_then_fails_clearly(
    atlas_down: str, augur_stub: AugurStub
) -> None:
    started = time.monotonic()
    state = await run_study(3, 5)
    elapsed = time.monotonic() - started

    assert state.is_failed()
    message = state.message or ""
    assert "Atlas database unavailable while loading ImageryFinder 3" in message
    assert "ConnectionRefusedError" in message
    assert DB_PASSWORD not in message
    runs = await task_runs(state, expect=2)
    assert runs["check-study"].run_count == 4  # 1 + 3 retries, after 1, 4 and 10 s
    assert 15 <= elapsed < 40, elapsed
    (note,) = [r.json for r in augur_stub.requests]
    assert note["event"] == "imagery-finder-study.failed"
    assert "Atlas database unavailable" in note["error"]
    assert DB_PASSWORD not in note["error"]


async def test_atlas_that_accepts_but_never_answers_times_out_as_transient(
    atlas_settings: Settings,
) -> None:
    with socket.socket() as silent:  # a TCP peer that never speaks: the handshake hangs
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        settings = Settings(
            atlas_db_url=f"postgresql://noctis:{DB_PASSWORD}@127.0.0.1:{port}/augur",
            atlas_db_connect_timeout=0.5,
            _env_file=None,
        )
        started = time.monotonic()
        async with open_runtime(settings) as runtime:
            with pytest.raises(DatabaseUnavailable) as caught:
                async with runtime.unit_of_work() as uow:
                    await check_study(uow, finder_id=1, dream_id=1)
        assert time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith("Atlas database unavailable while loading ImageryFinder 1:")
    assert "ATLAS_DB_CONNECT_TIMEOUT" in message
    assert DB_PASSWORD not in message
    assert is_retryable(caught.value)


async def test_statement_timeout_stops_a_blocked_link_with_a_clear_error(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finder, dream, _ = await _study(admin)
    monkeypatch.setenv("ATLAS_DB_STATEMENT_TIMEOUT_MS", "200")
    get_settings.cache_clear()
    blocker = await psycopg.AsyncConnection.connect(admin_dsn(study_env))
    await blocker.execute("LOCK TABLE archive_lookup_item IN SHARE MODE")  # INSERT must wait
    try:
        started = time.monotonic()
        state = await run_study(finder, dream)
        elapsed = time.monotonic() - started
    finally:
        await blocker.rollback()
        await blocker.close()

    assert state.is_failed()
    message = state.message or ""
    assert f"Atlas database error while linking ImageryFinder {finder} to Dream {dream}" in message
    assert "canceling statement due to statement timeout" in message
    assert "ATLAS_DB_STATEMENT_TIMEOUT_MS" in message
    assert elapsed < 10, elapsed  # it did not hang
    runs = await task_runs(state, expect=3)
    assert runs["link-matches"].run_count == 1  # a timeout is not transient: not retried
    assert await lookup_count(admin) == 0
    (note,) = [r.json for r in augur_stub.requests]
    assert note["event"] == "imagery-finder-study.failed"
    assert "statement timeout" in note["error"]


async def test_statement_timeout_is_a_server_setting_of_every_connection(
    atlas_settings: Settings,
) -> None:

    settings = atlas_settings.model_copy(update={"atlas_db_statement_timeout_ms": 200})
    async with open_runtime(settings) as runtime, runtime.unit_of_work() as uow:
        assert (await uow.session.execute(text("SHOW statement_timeout"))).scalar() == "200ms"
        with pytest.raises(DatabaseError, match="statement timeout"):
            async with translated("sleeping"):
                await uow.session.execute(text("SELECT pg_sleep(5)"))


async def test_jit_is_off_on_every_connection_async_and_sync(atlas_settings: Settings) -> None:
    """Not only in the match rule's transactions: a summary read outside them (the suspect
    count, one ST_IsValid per item) was JIT-compiled at the server's default."""
    async with open_runtime(atlas_settings) as runtime, runtime.unit_of_work() as uow:
        assert (await uow.session.execute(text("SHOW jit"))).scalar() == "off"
    with sync_session(atlas_settings) as session:
        assert session.execute(text("SHOW jit")).scalar() == "off"
