"""Augur faults, through the flow: bounded retries, one logical notification, matches kept.

Each run sends one logical notification: every attempt carries the same Idempotency-Key
(``noctis:imagery-finder-<pk>:dream-<pk>:update-<n>:completed``, fixed when the outbox row was
written) and the same body, so Augur can drop the duplicates a timeout may leave (the stub
records an attempt even when the client gave up on it).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import psycopg
import pytest

from noctis.devtools.localdb import free_port
from noctis.settings import Settings, get_settings
from tests.support.augur_stub import AugurStub, RecordedRequest, Reply
from tests.support.factories import box
from tests.support.studies import (
    AUGUR_TOKEN,
    add_dream,
    add_finder,
    completed_key_pattern,
    linked_ids,
    reference_ids,
    run_study,
    seed_grid,
)

pytestmark = pytest.mark.reliability


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


async def _study(admin: psycopg.AsyncConnection) -> tuple[int, int, list[int]]:
    await seed_grid(admin, n=400)
    dream = await add_dream(admin)
    finder = await add_finder(admin, box(10.5, 44.5, 11.5, 45.5))
    expected = await reference_ids(admin, finder)
    assert expected
    return finder, dream, expected


def _one_logical_notification(requests: list[RecordedRequest], flow_run_id: str) -> Any:
    """Every attempt is the same notification: one key (the key of one update of the study),
    one body; returns the body."""
    assert requests
    body = requests[0].json
    pattern = completed_key_pattern(body["imagery_finder_pk"], body["dream_pk"])
    [key] = {r.header("Idempotency-Key") for r in requests}
    assert re.fullmatch(pattern, key or ""), key
    assert len({r.body for r in requests}) == 1
    assert body["flow_run_id"] == flow_run_id
    return body


async def test_5xx_are_retried_until_augur_takes_it(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    finder, dream, expected = await _study(admin)
    augur_stub.script([500, 502, 503, 504, 200])
    state = await run_study(finder, dream)
    assert state.is_completed(), state.message
    result = await state.aresult()
    body = _one_logical_notification(augur_stub.requests, result.flow_run_id)
    assert len(augur_stub.requests) == 5
    assert body["matched_count"] == len(expected)


async def test_5xx_until_the_budget_is_spent_fails_the_run_and_keeps_the_matches(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    finder, dream, expected = await _study(admin)
    augur_stub.script([500] * 10)
    state = await run_study(finder, dream)

    assert state.is_failed()
    message = state.message or ""
    assert "AugurUnavailable" in message
    assert "did not take the imagery-finder-study.completed" in message
    assert "5 attempt(s)" in message and "max attempts reached" in message
    assert "last cause: HTTP 500" in message
    assert len(augur_stub.requests) == 5  # NOCTIS_AUGUR_MAX_ATTEMPTS, no more
    flow_run_id = str(state.state_details.flow_run_id)
    _one_logical_notification(augur_stub.requests, flow_run_id)  # no extra 'failed' event
    assert await linked_ids(admin, finder, dream) == expected  # the matches are kept

    # A rerun records nothing twice and notifies again (a new run, a new key).
    augur_stub.script([])
    again = await run_study(finder, dream)
    assert again.is_completed()
    assert (await again.aresult()).new_count == 0
    assert await linked_ids(admin, finder, dream) == expected


async def test_the_retry_budget_in_seconds_bounds_the_run(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finder, dream, _ = await _study(admin)
    _env(
        monkeypatch,
        NOCTIS_AUGUR_MAX_ATTEMPTS="100",
        NOCTIS_AUGUR_MAX_RETRY_SECONDS="1.5",
        NOCTIS_AUGUR_BACKOFF_BASE="0.2",
        NOCTIS_AUGUR_BACKOFF_MAX="0.4",
    )
    augur_stub.script([503] * 100)
    started = time.monotonic()
    state = await run_study(finder, dream)
    elapsed = time.monotonic() - started
    assert state.is_failed()
    assert "budget spent" in (state.message or "")
    assert 2 <= len(augur_stub.requests) < 100
    assert elapsed < 15, elapsed  # 100 attempts would take 20 s or more; generous under load


async def test_429_retry_after_in_seconds_is_honoured(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finder, dream, _ = await _study(admin)
    _env(monkeypatch, NOCTIS_AUGUR_BACKOFF_MAX="5")  # the cap on Retry-After
    augur_stub.script([Reply(429, headers={"Retry-After": "1"}), 201])
    state = await run_study(finder, dream)
    assert state.is_completed(), state.message
    first, second = augur_stub.requests
    assert second.time - first.time >= 0.95  # waited as told, not the 50 ms backoff
    _one_logical_notification(augur_stub.requests, (await state.aresult()).flow_run_id)


async def test_429_retry_after_as_an_http_date_past_the_budget_leaves_it_to_the_outbox(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finder, dream, _ = await _study(admin)
    _env(monkeypatch, NOCTIS_AUGUR_BACKOFF_MAX="0.5")
    in_an_hour = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    augur_stub.script([Reply(429, headers={"Retry-After": in_an_hour}), 200])
    started = time.monotonic()
    state = await run_study(finder, dream)
    assert time.monotonic() - started < 10  # an hour was asked: never retried sooner
    assert state.is_failed() and "s (Retry-After)" in (state.message or "")
    assert len(augur_stub.requests) == 1  # the dispatcher sends it later, from the outbox


async def test_a_timeout_is_retried_with_the_same_key(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finder, dream, _ = await _study(admin)
    _env(monkeypatch, NOCTIS_AUGUR_TIMEOUT="0.5")
    augur_stub.script([Reply(stall=2.0), Reply(disconnect=True), 200])
    state = await run_study(finder, dream)
    assert state.is_completed(), state.message
    assert len(augur_stub.requests) == 3  # Augur saw the stalled one too: the key dedupes it
    _one_logical_notification(augur_stub.requests, (await state.aresult()).flow_run_id)


async def test_timeouts_until_the_budget_is_spent_fail_the_run_clearly(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finder, dream, expected = await _study(admin)
    _env(monkeypatch, NOCTIS_AUGUR_TIMEOUT="0.3", NOCTIS_AUGUR_MAX_ATTEMPTS="3")
    augur_stub.script([Reply(stall=2.0)] * 3)
    state = await run_study(finder, dream)
    assert state.is_failed()
    message = state.message or ""
    assert "3 attempt(s)" in message and "Timeout" in message, message
    assert await linked_ids(admin, finder, dream) == expected


async def test_connection_refused_fails_the_run_after_bounded_retries(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finder, dream, expected = await _study(admin)
    port = free_port()
    _env(monkeypatch, NOCTIS_AUGUR_API_URL=f"http://127.0.0.1:{port}")
    started = time.monotonic()
    state = await run_study(finder, dream)
    assert state.is_failed()
    message = state.message or ""
    assert f"Augur at http://127.0.0.1:{port}/api/v1/dreams/{dream}" in message
    assert "5 attempt(s)" in message and "ConnectError" in message, message
    assert time.monotonic() - started < 10
    assert await linked_ids(admin, finder, dream) == expected


async def test_a_slow_answer_within_the_timeout_is_one_attempt(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finder, dream, _ = await _study(admin)
    _env(monkeypatch, NOCTIS_AUGUR_TIMEOUT="3")
    augur_stub.script([Reply(stall=1.5)])
    state = await run_study(finder, dream)
    assert state.is_completed(), state.message
    assert len(augur_stub.requests) == 1


async def test_409_already_received_counts_as_success(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    finder, dream, expected = await _study(admin)
    augur_stub.script([Reply(409, json={"detail": "already received"})])
    state = await run_study(finder, dream)
    assert state.is_completed(), state.message
    assert len(augur_stub.requests) == 1
    assert await linked_ids(admin, finder, dream) == expected


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_a_4xx_fails_at_once_with_augurs_words_and_no_token(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub, status: int
) -> None:
    finder, dream, expected = await _study(admin)
    # A proxy that echoes the Authorization header back must not leak the token.
    augur_stub.script([Reply(status, json={"detail": f"no: Bearer {AUGUR_TOKEN}"})])
    state = await run_study(finder, dream)
    assert state.is_failed()
    message = state.message or ""
    assert f"with HTTP {status}: no: Bearer **********" in message
    assert f"Augur rejected the imagery-finder-study.completed for dream {dream} " in message
    assert AUGUR_TOKEN not in message
    assert len(augur_stub.requests) == 1
    assert await linked_ids(admin, finder, dream) == expected


async def test_a_failed_study_still_tells_augur_through_its_faults(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await add_dream(admin)
    finder = await add_finder(admin, "LINESTRING(0 0, 1 1)")
    augur_stub.script([503, Reply(429, headers={"Retry-After": "0"}), 200])
    state = await run_study(finder, dream)
    assert state.is_failed()
    assert f"ImageryFinder {finder} has a LineString location" in (state.message or "")
    flow_run_id = state.state_details.flow_run_id
    assert len(augur_stub.requests) == 3
    assert {r.header("Idempotency-Key") for r in augur_stub.requests} == {
        f"noctis:imagery-finder-{finder}:dream-{dream}:run-{flow_run_id}:failed"
    }
    assert {r.json["event"] for r in augur_stub.requests} == {"imagery-finder-study.failed"}


async def test_augur_down_does_not_mask_the_reason_a_study_failed(
    study_env: Settings, admin: psycopg.AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> None:

    dream = await add_dream(admin)
    finder = await add_finder(admin, "POLYGON EMPTY")
    _env(monkeypatch, NOCTIS_AUGUR_API_URL=f"http://127.0.0.1:{free_port()}")
    state = await run_study(finder, dream)
    assert state.is_failed()
    assert f"ImageryFinder {finder} has an empty location" in (state.message or "")
