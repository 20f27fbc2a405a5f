"""One regression test per hardening finding (issue 16): each class of bad input or bad
configuration gets a clear error naming the object and the reason, or a right answer, never a
made-up number, a leaked secret, a retried configuration error or a raw traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import psycopg
import pytest

from noctis.settings import Settings, get_settings
from tests.support.augur_stub import AugurStub
from tests.support.factories import box, square
from tests.support.studies import (
    add_dream,
    add_finder,
    linked_ids,
    lookup_count,
    reference_ids,
    run_study,
    scalar,
    seed_grid,
    task_runs,
)

pytestmark = pytest.mark.reliability


async def _failed_clearly(
    state: object, reason: str, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    assert state.is_failed(), state  # type: ignore[attr-defined]
    message = state.message or ""  # type: ignore[attr-defined]
    assert reason in message, message
    assert "Traceback" not in message
    assert await lookup_count(admin) == 0
    (note,) = [r.json for r in augur_stub.requests]
    assert note["event"] == "imagery-finder-study.failed"
    assert reason in note["error"]


# 1. ---------------------------------------------------------------- a fabricated coverage


@pytest.mark.parametrize("x", ["Infinity", "NaN"])
async def test_a_non_finite_footprint_matches_with_no_coverage_and_is_counted(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub, x: str
) -> None:
    await seed_grid(admin, n=40, lon=10.0, lat=44.0)
    await admin.execute(
        "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) SELECT "
        "'bad', 's2', ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY[ST_MakePoint(10.1, 44.1), "
        "ST_MakePoint(10.4, 44.1), ST_MakePoint(%s::float8, 44.4), ST_MakePoint(10.1, 44.4), "
        "ST_MakePoint(10.1, 44.1)])), 4326), '2024-01-02T10:00Z'",
        (x,),
    )
    dream = await add_dream(admin)
    finder = await add_finder(admin, box(10.0, 44.0, 10.6, 44.6))
    state = await run_study(finder, dream)
    assert state.is_completed(), state.message
    result = await state.aresult()
    assert await linked_ids(admin, finder, dream) == await reference_ids(admin, finder)
    bad = await scalar(
        admin,
        "SELECT l.coverage IS NULL FROM archive_lookup_item l JOIN archive_item a "
        "ON a.id = l.archive_item_id WHERE a.external_id = 'bad'",
    )
    assert bad is True  # recorded, and never 1.0
    assert result.suspect_count == 1
    assert 0.0 < result.coverage <= 1.0
    good = await scalar(
        admin, "SELECT count(*) FROM archive_lookup_item WHERE coverage NOT BETWEEN 0 AND 1"
    )
    assert good == 0


# 3. ---------------------------------------------------------------- a long collections list


async def test_forty_thousand_collections_are_one_array_parameter(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    await seed_grid(admin, n=100)
    dream = await add_dream(admin)
    names = [f"c{i}" for i in range(40_000)] + ["sentinel-2-l2a"]
    finder = await add_finder(admin, box(10.0, 44.0, 12.0, 46.0), collections=names)
    state = await run_study(finder, dream)
    assert state.is_completed(), state.message
    linked = await linked_ids(admin, finder, dream)
    assert linked == await reference_ids(admin, finder)
    assert linked  # the sentinel-2-l2a items
    runs = await task_runs(state, expect=4)
    assert runs["link-matches"].run_count == 1  # nothing was retried


# 4. ---------------------------------------------------------------- values Python cannot hold


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("start_date", "0044-03-15 BC", "0044-03-15 BC"),
        ("end_date", "10000-01-01", "10000-01-01"),
    ],
)
async def test_a_date_python_cannot_hold_is_refused_naming_the_finder_and_the_column(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    column: str,
    value: str,
    shown: str,
) -> None:
    dream = await add_dream(admin)
    finder = await add_finder(admin, square(10, 44, 0.5))
    await admin.execute(
        f"UPDATE imagery_finder SET {column} = %s::date WHERE id = %s",  # column: a constant
        (value, finder),
    )
    state = await run_study(finder, dream)
    reason = f"ImageryFinder {finder} has a {column} of {shown}, which Noctis cannot work with"
    await _failed_clearly(state, reason, admin, augur_stub)


async def test_a_two_dimensional_collections_array_is_refused_before_linking(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await add_dream(admin)
    finder = await add_finder(admin, square(10, 44, 0.5))
    await admin.execute(
        "UPDATE imagery_finder SET collections = ARRAY[['a', 'b'], ['c', 'd']] WHERE id = %s",
        (finder,),
    )
    state = await run_study(finder, dream)
    reason = f"ImageryFinder {finder} has a 2-dimensional collections array"
    await _failed_clearly(state, reason, admin, augur_stub)


# 5. ---------------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        (
            "ATLAS_DB_URL",
            "postgresql://u:pw-7d1@localhost:notaport/db",
            "ATLAS_DB_URL is not a URL",
        ),
        ("ATLAS_DB_URL", "postgresql://u:pw-7d1@localhost:99999/db", "has port 99999"),
        ("ATLAS_DB_URL", "postgresql://u:pw-7d1@localhost/db?sslmode=sure", "sslmode=sure"),
        ("ATLAS_DB_PORT", "99999", "ATLAS_DB_PORT Input should be less than 65536"),
        ("NOCTIS_AUGUR_NOTIFY_PATH", "/{dream_pk.__class__}", "may only use the placeholders"),
        ("NOCTIS_AUGUR_API_TOKEN", "tok\nen", "NOCTIS_AUGUR_API_TOKEN holds a control character"),
    ],
)
async def test_a_bad_setting_fails_the_run_at_once_naming_the_variable_not_its_value(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    reason: str,
) -> None:
    dream = await add_dream(admin)
    finder = await add_finder(admin, square(10, 44, 0.5))
    monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    state = await run_study(finder, dream)
    assert state.is_failed()
    message = state.message or ""
    assert "Configuration refused" in message and reason in message, message
    assert "pw-7d1" not in message and "tok\nen" not in message
    assert augur_stub.requests == []  # nothing was sent, nothing retried
    assert await lookup_count(admin) == 0


# 6. ---------------------------------------------------------------- cost without bound


async def test_a_multipoint_beyond_the_limit_is_refused_and_one_within_it_runs(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOCTIS_MAX_AOI_POINTS", "100")
    get_settings.cache_clear()
    await seed_grid(admin, n=100)
    dream = await add_dream(admin)
    grid = ", ".join(f"({10 + i * 0.01} {44 + j * 0.01})" for i in range(10) for j in range(10))
    within = await add_finder(admin, f"MULTIPOINT({grid})")
    state = await run_study(within, dream)
    assert state.is_completed(), state.message
    assert await linked_ids(admin, within, dream) == await reference_ids(admin, within)
    augur_stub.reset()
    beyond = await add_finder(admin, f"MULTIPOINT({grid}, (10.5 44.5))")
    state = await run_study(beyond, dream)
    assert state.is_failed()
    reason = (
        f"ImageryFinder {beyond} has a MultiPoint location of 101 points: at most 100 "
        "(NOCTIS_MAX_AOI_POINTS)"
    )
    assert reason in (state.message or "")
    assert augur_stub.requests[0].json["error"].startswith(reason)


# 7. ---------------------------------------------------------------- raw tracebacks at the edges


def test_python_m_flow_ends_a_failure_in_one_line(study_env: Settings, prefect_server: str) -> None:
    outcome = subprocess.run(
        [sys.executable, "-m", "noctis.flows.imagery_finder_study",
         "--imagery-finder-pk", "987654", "--dream-pk", "1"],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "PREFECT_API_URL": prefect_server},
    )  # fmt: skip
    assert outcome.returncode == 1
    # Prefect's run log (lines stamped HH:MM:SS.mmm |, with the traceback it logs) may show
    # the exception; the command's own output ends in one clear line, with no traceback after.
    own = [line for line in outcome.stderr.splitlines() if not re.match(r"\d\d:\d\d:\d\d\.", line)]
    assert own[-1] == "Study failed: ImageryFinder 987654 does not exist", outcome.stderr[-2000:]
    assert sum(line.startswith("Study failed:") for line in own) == 1


async def test_an_ephemeral_server_that_does_not_start_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from noctis.errors import PrefectUnavailable
    from noctis.flows import imagery_finder_study as module

    async def no_server(**_: object) -> None:
        raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")

    monkeypatch.setattr(module, "imagery_finder_study", no_server)
    with pytest.raises(PrefectUnavailable, match="point PREFECT_API_URL") as refused:
        await module.run_here(1, 1)
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in str(refused.value)
    assert json.dumps(str(refused.value))  # one line, no traceback to print
    assert "\n" not in str(refused.value)
