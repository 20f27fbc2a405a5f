"""The `noctis` CLI and the deployment registration, under Prefect's harness."""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.states import Scheduled
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from noctis.cli import app
from noctis.db import libpq_dsn
from noctis.deployment import DISPATCH_QUEUE, DISPATCHER_FULL_NAME, FULL_NAME, register
from noctis.settings import Settings, get_settings
from tests.conftest import _admin, _head_revision
from tests.support.studies import admin_dsn

runner = CliRunner()


def _seed(settings: Settings) -> tuple[int, int]:
    with psycopg.connect(admin_dsn(settings)) as conn:
        dream = conn.execute("INSERT INTO dream (name) VALUES ('cli') RETURNING id").fetchone()
        finder = conn.execute(
            "INSERT INTO imagery_finder (name, location, start_date, end_date) VALUES "
            "('cli', ST_GeomFromText('POINT(5 45)', 4326), '2024-01-01', '2024-12-31') "
            "RETURNING id"
        ).fetchone()
        conn.execute(
            "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) VALUES "
            "('a', 's2', ST_MakeEnvelope(4, 44, 6, 46, 4326), '2024-05-01T10:00Z'),"
            "('b', 's2', ST_MakeEnvelope(4, 44, 6, 46, 4326), '2025-05-01T10:00Z')"
        )
    assert dream is not None and finder is not None
    return int(finder[0]), int(dream[0])


def test_run_json_prints_one_result_object(study_env: Settings) -> None:
    finder, dream = _seed(study_env)
    outcome = runner.invoke(
        app, ["run", "--imagery-finder-pk", str(finder), "--dream-pk", str(dream), "--json"]
    )
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert result["matched_count"] == 1
    assert result["new_count"] == 1
    assert result["coverage"] is None  # a point AOI
    assert result["imagery_finder_pk"] == finder


def test_run_of_an_unknown_finder_exits_1_with_the_reason(study_env: Settings) -> None:
    _, dream = _seed(study_env)
    console = io.StringIO()  # a stream handler on the root logger, as Prefect's console is
    handler = logging.StreamHandler(console)
    logging.getLogger().addHandler(handler)
    try:
        outcome = runner.invoke(
            app, ["run", "--imagery-finder-pk", "9999", "--dream-pk", str(dream)]
        )
    finally:
        logging.getLogger().removeHandler(handler)
    assert outcome.exit_code == 1
    assert "ImageryFinder 9999 does not exist" in outcome.output
    # The run's own log lines say it too, without a traceback to read through first.
    shown = console.getvalue()
    assert "FinderNotFound(" in shown
    assert "ImageryFinder 9999 does not exist" in shown
    assert "Traceback" not in shown


def test_run_refuses_a_non_positive_pk_before_running() -> None:
    outcome = runner.invoke(app, ["run", "--imagery-finder-pk", "0", "--dream-pk", "1"])
    assert outcome.exit_code == 2
    assert "imagery-finder-pk" in outcome.output


async def test_deploy_registers_once_on_a_process_pool_with_an_enforced_schema() -> None:
    pool = f"noctis-pool-{uuid.uuid4().hex[:6]}"
    first = await register(work_pool=pool)
    again = await register(work_pool=pool)
    assert first == again
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(FULL_NAME)
        work_pool = await client.read_work_pool(pool)
    assert deployment.id == first
    assert deployment.work_pool_name == pool
    assert work_pool.type == "process"
    assert deployment.enforce_parameter_schema
    assert deployment.entrypoint == "noctis.flows.imagery_finder_study.imagery_finder_study"
    schema = deployment.parameter_openapi_schema
    assert schema is not None
    assert schema["properties"]["dream_pk"]["exclusiveMinimum"] == 0


async def test_a_worker_takes_dispatcher_passes_before_studies_scheduled_earlier() -> None:
    """A burst of studies must not hold back delivery and crash notices: the dispatcher's runs
    sit on a queue of higher priority, and the worker's own query (the one asked here) takes
    them first, although every study was due earlier."""
    pool = f"noctis-pool-{uuid.uuid4().hex[:6]}"
    await register(work_pool=pool)
    await register(work_pool=pool)  # a second registration keeps the queue's priority
    now = datetime.now(UTC)
    async with get_client() as client:
        study = await client.read_deployment_by_name(FULL_NAME)
        dispatcher = await client.read_deployment_by_name(DISPATCHER_FULL_NAME)
        studies = {
            (
                await client.create_flow_run_from_deployment(
                    study.id,
                    parameters={"imagery_finder_pk": 1, "dream_pk": 1},
                    state=Scheduled(scheduled_time=now - timedelta(minutes=10 - i)),
                )
            ).id
            for i in range(3)
        }
        notice = await client.create_flow_run_from_deployment(
            dispatcher.id, state=Scheduled(scheduled_time=now - timedelta(seconds=5))
        )
        queue = await client.read_work_queue_by_name(DISPATCH_QUEUE, work_pool_name=pool)
        taken = await client.get_scheduled_flow_runs_for_work_pool(pool, scheduled_before=now)
    assert dispatcher.work_queue_name == DISPATCH_QUEUE and queue.priority == 1
    order = [run.flow_run.id for run in taken]
    assert studies <= set(order) and notice.id in order
    first_study = min(order.index(run) for run in studies)
    assert all(run.flow_run.deployment_id == dispatcher.id for run in taken[:first_study]), (
        "a study was taken before a dispatcher pass"
    )
    assert order.index(notice.id) < first_study


def test_db_upgrade_migrates_the_configured_database(
    postgis_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cli_{uuid.uuid4().hex[:8]}"
    with _admin(postgis_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = postgis_url.set(database=name).render_as_string(hide_password=False)
        monkeypatch.setenv("ATLAS_DB_URL", url)
        get_settings.cache_clear()
        outcome = runner.invoke(app, ["db", "upgrade"])
        assert outcome.exit_code == 0, outcome.output
        with psycopg.connect(libpq_dsn(postgis_url.set(database=name))) as conn:
            version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version == (_head_revision(),)
    finally:
        get_settings.cache_clear()
        with _admin(postgis_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("configured", [True, False])
def test_run_says_how_to_skip_the_temporary_server_when_no_api_is_set(
    study_env: Settings, monkeypatch: pytest.MonkeyPatch, configured: bool
) -> None:
    import noctis.flows.outbox_dispatcher as dispatcher

    monkeypatch.setattr(dispatcher, "prefect_api_configured", lambda: configured)
    finder, dream = _seed(study_env)
    outcome = runner.invoke(
        app, ["run", "--imagery-finder-pk", str(finder), "--dream-pk", str(dream), "--json"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout.strip().splitlines()[-1])["matched_count"] == 1
    hint = "No PREFECT_API_URL: Prefect starts a temporary server"
    assert (hint in outcome.stderr) is not configured
    if not configured:
        assert "PREFECT_API_URL=http://127.0.0.1:4200/api" in outcome.stderr
