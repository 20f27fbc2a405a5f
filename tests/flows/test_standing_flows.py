"""The standing studies under Prefect (the harness, its server on PostgreSQL), on a real PostGIS,
against a loopback Augur: the standing-match and close-study flows, their deployments, and the
CLI (``noctis standing match``, ``noctis study close``)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import psycopg
from prefect.client.orchestration import get_client
from typer.testing import CliRunner, Result

from noctis.cli import app
from noctis.deployment import CLOSE_FULL_NAME, STANDING_FULL_NAME, register_standing
from noctis.flows.standing import LOADED_EVENT, close_study, standing_match
from noctis.settings import Settings
from tests.support.augur_stub import AugurStub
from tests.support.studies import add_dream, add_finder, admin_dsn, linked_ids, run_study

runner = CliRunner()
AOI = "POLYGON((10 45, 11 45, 11 46, 10 46, 10 45))"
SCENE = (
    "INSERT INTO archive_item (external_id, collection, footprint, acquired_at, cloud_cover) "
    "SELECT 'late-' || g, 'sentinel-2-l2a', ST_MakeEnvelope(10.2, 45.2, 10.4, 45.4, 4326), "
    "timestamptz '2024-06-01Z' + g * interval '1 day', 5 FROM generate_series(1, %s) g"
)


async def _standing_study(settings: Settings) -> tuple[int, int]:
    """A study that has run (through the flow): it stands."""
    async with await psycopg.AsyncConnection.connect(admin_dsn(settings), autocommit=True) as c:
        dream, finder = await add_dream(c), await add_finder(c, AOI, start="2024-01-01")
    state = await run_study(finder, dream)
    assert state.is_completed(), state.message
    return finder, dream


async def _scenes(settings: Settings, n: int) -> None:
    async with await psycopg.AsyncConnection.connect(admin_dsn(settings), autocommit=True) as c:
        await c.execute(SCENE, (n,))


async def test_the_flow_matches_late_scenes_and_tells_augur_once_per_study(
    study_env: Settings, augur_stub: AugurStub
) -> None:
    finder, dream = await _standing_study(study_env)
    augur_stub.reset()
    await _scenes(study_env, 5)
    state = await standing_match(return_state=True)
    assert state.is_completed(), state.message
    report = await state.aresult()
    assert (report.scenes, report.new, report.notifications, report.delivered) == (5, 5, 1, 1)
    [note] = augur_stub.requests
    assert note.json["event"] == "imagery-finder-study.updated"
    assert (note.json["new_count"], note.json["matched_count"]) == (5, 5)
    assert note.json["flow_run_id"] == str(state.state_details.flow_run_id)
    key = note.header("Idempotency-Key") or ""
    assert re.fullmatch(rf"noctis:imagery-finder-{finder}:dream-{dream}:update-\d+:updated", key)
    async with await psycopg.AsyncConnection.connect(admin_dsn(study_env)) as conn:
        assert len(await linked_ids(conn, finder, dream)) == 5
    # Nothing new: the next run matches nothing and says nothing.
    again = await (await standing_match(return_state=True)).aresult()
    assert (again.scenes, again.notifications) == (0, 0)
    assert len(augur_stub.requests) == 1


async def test_close_study_stops_the_matching_and_an_unknown_study_fails_with_its_name(
    study_env: Settings, augur_stub: AugurStub
) -> None:
    finder, dream = await _standing_study(study_env)
    state = await close_study(imagery_finder_pk=finder, dream_pk=dream, return_state=True)
    assert state.is_completed(), state.message
    closed = await state.aresult()
    assert closed["already_closed"] is False and closed["closed_at"]
    await _scenes(study_env, 3)
    report = await (await standing_match(return_state=True)).aresult()
    assert (report.scenes, report.new, report.standing) == (3, 0, 0)
    unknown = await close_study(imagery_finder_pk=finder, dream_pk=dream + 99, return_state=True)
    assert unknown.is_failed()
    assert f"Dream {dream + 99} does not exist" in str(unknown.message)  # not its window
    never = await close_study(imagery_finder_pk=finder + 99, dream_pk=dream, return_state=True)
    assert never.is_failed()
    assert f"ImageryFinder {finder + 99} for Dream {dream} is not a standing study" in str(
        never.message
    )


async def test_deploy_registers_the_matcher_on_a_schedule_and_an_event_and_close_study() -> None:
    pool = f"noctis-pool-{uuid.uuid4().hex[:6]}"
    first = await register_standing(work_pool=pool)
    assert await register_standing(work_pool=pool) == first  # idempotent
    async with get_client() as client:
        matcher = await client.read_deployment_by_name(STANDING_FULL_NAME)
        closer = await client.read_deployment_by_name(CLOSE_FULL_NAME)
        automations = await client.read_automations_by_name(
            "noctis: match scenes a loader committed"
        )
    assert (matcher.id, closer.id) == first
    assert matcher.entrypoint == "noctis.flows.standing.standing_match"
    assert [s.schedule.interval.total_seconds() for s in matcher.schedules] == [60.0]  # type: ignore[union-attr]
    [trigger] = [a.trigger for a in automations]
    assert trigger.expect == {LOADED_EVENT}  # type: ignore[union-attr]
    assert closer.enforce_parameter_schema
    schema = closer.parameter_openapi_schema
    assert schema is not None and schema["properties"]["dream_pk"]["exclusiveMinimum"] == 0


async def _cli(*args: str) -> Result:
    """``noctis ARGS``, in a thread: the CLI runs its own event loop (``asyncio.run``)."""
    return await asyncio.to_thread(runner.invoke, app, list(args))


async def test_the_cli_runs_one_pass_and_closes_a_study(
    study_env: Settings, augur_stub: AugurStub
) -> None:
    finder, dream = await _standing_study(study_env)
    await _scenes(study_env, 4)
    outcome = await _cli("standing", "match", "--json")
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert (summary["scenes"], summary["new"], summary["delivered"], summary["backlog"]) == (
        4, 4, 1, 0,
    )  # fmt: skip
    table = await _cli("standing", "match")
    assert table.exit_code == 0 and "Scenes matched" in table.output
    pks = ["--imagery-finder-pk", str(finder), "--dream-pk", str(dream)]
    closed = await _cli("study", "close", *pks)
    assert closed.exit_code == 0 and "is closed" in closed.output, closed.output
    again = await _cli("study", "close", *pks, "--json")
    assert json.loads(again.stdout.strip().splitlines()[-1])["already_closed"] is True
    unknown = await _cli("study", "close", "--imagery-finder-pk", "999", "--dream-pk", "1")
    assert unknown.exit_code == 1
    assert "ImageryFinder 999 for Dream 1 is not a standing study" in unknown.output
