"""Augur's side of the wire, for real: a Prefect server, ``noctis deploy`` and a process worker.

Augur triggers ``imagery-finder-study/default`` through the REST API (look the deployment up by
name, ``create_flow_run`` with an idempotency key) or the ``prefect deployment run`` CLI, and
waits for Noctis' notification. These tests do exactly that against real processes (see
conftest.py) and check what Augur can observe: the run's state, the rows in Atlas, the
notification, the refusals. docs/operations.md quotes the requests made here.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from noctis.augur import failed_key
from noctis.db import libpq_dsn
from noctis.deployment import (
    CLOSE_FULL_NAME,
    DEFAULT_ZOMBIE_AFTER,
    DISPATCHER_FULL_NAME,
    FULL_NAME,
    HEARTBEAT_SECONDS,
    SILENT_CRASH_MESSAGE,
    STANDING_FULL_NAME,
    STUCK_CRASH_MESSAGE,
    ZOMBIE_AUTOMATION_NAME,
    ZOMBIE_CRASH_MESSAGE,
    register,
)
from noctis.flows.imagery_finder_study import ATLAS_WRITES_LIMIT
from noctis.settings import DEFAULT_NOTIFY_PATH, Settings
from tests.e2e.conftest import (
    AUGUR_TOKEN,
    BIN,
    WORK_POOL,
    PrefectServer,
    StartWorker,
    noctis_deploy,
)
from tests.support.augur_stub import AugurStub, RecordedRequest, Reply

pytestmark = pytest.mark.e2e

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
RUN_TIMEOUT = 240.0  # a flow-run process starts in seconds when idle, minutes at load 35
LINK_LIMIT = int(Settings.model_fields["noctis_link_concurrency_limit"].default)  # 8
LATENCY_BOUND = 30.0  # loose: the measured latency is printed; ~3 s is the target
CRASH_NOTICE_BOUND = 120.0  # issue 12: a Crashed or Cancelled run announced within 2 minutes


# ------------------------------------------------------------------ Atlas ----


def _dsn(settings: Settings) -> str:
    return libpq_dsn(settings.atlas_url)


def _seed(settings: Settings) -> tuple[int, int, list[int]]:
    """A dream, a polygon finder over 2024, five archive items of which three match."""
    with psycopg.connect(_dsn(settings)) as conn:
        dream = conn.execute("INSERT INTO dream (name) VALUES ('e2e') RETURNING id").fetchone()
        finder = conn.execute(
            "INSERT INTO imagery_finder (name, location, start_date, end_date) VALUES "
            "('e2e', ST_MakeEnvelope(5, 45, 6, 46, 4326), '2024-01-01', '2024-12-31') "
            "RETURNING id"
        ).fetchone()
        rows = conn.execute(
            "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) VALUES "
            "('in-1', 's2', ST_MakeEnvelope(4.5, 44.5, 5.5, 45.5, 4326), '2024-02-01T10:00Z'),"
            "('in-2', 's2', ST_MakeEnvelope(5.2, 45.2, 5.8, 45.8, 4326), '2024-06-01T10:00Z'),"
            "('in-3', 'l8', ST_MakeEnvelope(5.5, 45.5, 6.5, 46.5, 4326), '2024-12-31T23:00Z'),"
            "('late', 's2', ST_MakeEnvelope(5, 45, 6, 46, 4326), '2025-01-01T00:00Z'),"
            "('away', 's2', ST_MakeEnvelope(20, 45, 21, 46, 4326), '2024-06-01T10:00Z') "
            "RETURNING id, external_id"
        ).fetchall()
    assert dream is not None and finder is not None
    matching = sorted(int(pk) for pk, external_id in rows if external_id.startswith("in-"))
    return int(finder[0]), int(dream[0]), matching


def _outbox_key(settings: Settings, run_id: str) -> str:
    """The Idempotency-Key the outbox gave the run's ``completed``."""
    with psycopg.connect(_dsn(settings)) as conn:
        row = conn.execute(
            "SELECT idempotency_key FROM notification_outbox WHERE flow_run_id = %s "
            "AND event = 'imagery-finder-study.completed'",
            (run_id,),
        ).fetchone()
    assert row is not None, f"no completed of run {run_id} in the outbox"
    return str(row[0])


def _lookups(settings: Settings, finder: int, dream: int) -> list[int]:
    with psycopg.connect(_dsn(settings)) as conn:
        rows = conn.execute(
            "SELECT archive_item_id FROM archive_lookup_item "
            "WHERE imagery_finder_id = %s AND dream_id = %s ORDER BY archive_item_id",
            (finder, dream),
        ).fetchall()
    return [int(row[0]) for row in rows]


# ------------------------------------------------------------ Prefect API ----


def _deployment_id(api: httpx.Client) -> str:
    response = api.get(f"/deployments/name/{FULL_NAME}")
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _create_flow_run(
    api: httpx.Client, deployment_id: str, parameters: dict[str, Any], key: str
) -> httpx.Response:
    """What Augur sends: the parameters and an idempotency key of its own."""
    return api.post(
        f"/deployments/{deployment_id}/create_flow_run",
        json={"parameters": parameters, "idempotency_key": key},
    )


def _run_count(api: httpx.Client, deployment_id: str) -> int:
    response = api.post("/flow_runs/count", json={"deployments": {"id": {"any_": [deployment_id]}}})
    assert response.status_code == 200, response.text
    return int(response.json())


def _wait_for_state(
    api: httpx.Client, run_id: str, states: set[str], timeout: float = RUN_TIMEOUT
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = api.get(f"/flow_runs/{run_id}").json()
        if run["state"] and run["state"]["type"] in states:
            return run
        time.sleep(0.2)
    raise AssertionError(f"flow run {run_id} not in {states} after {timeout} s: {run}")


def _timeline(api: httpx.Client, run_id: str) -> str:
    """``Scheduled +0.00 s, Pending +0.87 s, Running +2.95 s, ...``: where a run's time went."""
    response = api.get("/flow_run_states/", params={"flow_run_id": run_id})
    assert response.status_code == 200, response.text
    states = sorted(response.json(), key=lambda state: state["timestamp"])
    times = [datetime.fromisoformat(state["timestamp"]) for state in states]
    return ", ".join(
        f"{state['name']} +{(at - times[0]).total_seconds():.2f} s"
        for state, at in zip(states, times, strict=True)
    )


def _of_run(augur: AugurStub, run_id: str | None) -> list[RecordedRequest]:
    """Augur's requests, or those about one flow run (not a dispatcher's announcement of a
    dead run of an earlier test on this module's server)."""
    return [
        r
        for r in augur.requests
        if run_id is None or (isinstance(r.json, dict) and r.json.get("flow_run_id") == run_id)
    ]


def _wait_for_notifications(
    augur: AugurStub, count: int, timeout: float = RUN_TIMEOUT, *, of_run: str | None = None
) -> list[RecordedRequest]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(got := _of_run(augur, of_run)) >= count:
            return got
        time.sleep(0.05)
    got = _of_run(augur, of_run)
    raise AssertionError(f"Augur got {len(got)} notification(s), expected {count}")


def _wait_for_heartbeat(api: httpx.Client, run_id: str, timeout: float = 20) -> None:
    """Until the server has recorded a heartbeat of the run (the zombie trigger's start)."""
    query = {
        "filter": {
            "event": {"name": ["prefect.flow-run.heartbeat"]},
            "resource": {"id": [f"prefect.flow-run.{run_id}"]},
        },
        "limit": 1,
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.post("/events/filter", json=query)
        assert response.status_code == 200, response.text
        if response.json()["events"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"no heartbeat of flow run {run_id} after {timeout} s")


def _check_notification(
    request: RecordedRequest,
    atlas: Settings,
    *,
    run_id: str,
    finder: int,
    dream: int,
    matched: int,
    new: int,
) -> None:
    assert request.method == "POST"
    assert request.path == DEFAULT_NOTIFY_PATH.format(dream_pk=dream)
    assert request.header("Idempotency-Key") == _outbox_key(atlas, run_id)
    assert request.header("Authorization") == f"Bearer {AUGUR_TOKEN}"
    body = dict(request.json)
    coverage = body.pop("coverage")
    plan_scenes, plan_coverage = body.pop("plan_scenes"), body.pop("plan_coverage")
    assert body == {
        "event": "imagery-finder-study.completed",
        "dream_pk": dream,
        "imagery_finder_pk": finder,
        "flow_run_id": run_id,
        "matched_count": matched,
        "new_count": new,
    }
    assert 0 < coverage < 1  # three items over part of the finder's box
    assert 1 <= plan_scenes <= matched  # the study's coverage plan
    assert plan_coverage == pytest.approx(coverage, abs=0.01)


def _automations(api: httpx.Client) -> list[dict[str, Any]]:
    """The zombie-run automations, read back by name."""
    response = api.post(
        "/automations/filter",
        json={"automations": {"name": {"any_": [ZOMBIE_AUTOMATION_NAME]}}},
    )
    assert response.status_code == 200, response.text
    automations: list[dict[str, Any]] = response.json()
    return automations


def _register(
    server: PrefectServer,
    zombie_after: timedelta = DEFAULT_ZOMBIE_AFTER,
    silent_after: timedelta | None = None,
) -> None:
    """``register()`` in this process (saves a ``noctis deploy`` start-up of ~5 s)."""
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        asyncio.run(
            register(
                work_pool=WORK_POOL,
                zombie_after=zombie_after,
                link_concurrency_limit=LINK_LIMIT,
                silent_after=silent_after,
            )
        )


# ------------------------------------------------------------------ tests ----


def test_augur_triggers_runs_over_rest_and_cli(
    prefect_server: PrefectServer,
    start_worker: StartWorker,
    atlas_settings: Settings,
    augur_stub: AugurStub,
) -> None:
    finder, dream, matching = _seed(atlas_settings)
    start_worker()
    parameters = {"imagery_finder_pk": finder, "dream_pk": dream}
    key = f"augur:dream-{dream}:finder-{finder}:{uuid.uuid4()}"

    with prefect_server.client() as api:
        deployment_id = _deployment_id(api)

        # 1. Augur's trigger: one POST, the run completes, Augur is told.
        triggered = time.monotonic()
        created = _create_flow_run(api, deployment_id, parameters, key)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        [notification] = _wait_for_notifications(augur_stub, 1)
        latency = notification.time - triggered
        print(f"\ntrigger-to-notification latency: {latency:.2f} s (worker polls every 1 s)")
        run = _wait_for_state(api, run_id, TERMINAL)
        assert run["state"]["type"] == "COMPLETED", run["state"]
        print(f"run states: {_timeline(api, run_id)}")
        assert run["parameters"] == parameters
        assert run["name"] == f"finder-{finder}-dream-{dream}"
        _check_notification(
            notification,
            atlas_settings,
            run_id=run_id,
            finder=finder,
            dream=dream,
            matched=3,
            new=3,
        )
        assert _lookups(atlas_settings, finder, dream) == matching
        assert latency < LATENCY_BOUND

        # 2. The same idempotency key again: the same run, no second one.
        again = _create_flow_run(api, deployment_id, parameters, key)
        assert again.status_code == 200, again.text
        assert again.json()["id"] == run_id
        assert _run_count(api, deployment_id) == 1

        # 3. Bad parameters are refused before any run exists, naming the parameter.
        for bad in (0, "seven"):
            refused = _create_flow_run(
                api, deployment_id, {**parameters, "imagery_finder_pk": bad}, f"bad-{bad}"
            )
            assert refused.status_code == 409, refused.text
            detail = refused.json()["detail"]
            print(f"imagery_finder_pk={bad!r} refused: HTTP 409 {detail}")
            assert "imagery_finder_pk" in detail
        assert _run_count(api, deployment_id) == 1

        # 4. The CLI way, against the same server: a second run, which converges.
        cli = subprocess.run(
            [
                *(str(BIN / "prefect"), "deployment", "run", FULL_NAME),
                *("--param", f"imagery_finder_pk={finder}", "--param", f"dream_pk={dream}"),
            ],
            env=prefect_server.env(),
            cwd=prefect_server.home,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert cli.returncode == 0, cli.stdout + cli.stderr
        match = re.search(r"UUID:\s*([0-9a-f-]{36})", cli.stdout)
        assert match, cli.stdout
        cli_run_id = match.group(1)
        assert cli_run_id != run_id
        cli_run = _wait_for_state(api, cli_run_id, TERMINAL)
        assert cli_run["state"]["type"] == "COMPLETED", cli_run["state"]
        assert _run_count(api, deployment_id) == 2

    _, rerun = _wait_for_notifications(augur_stub, 2)
    _check_notification(
        rerun, atlas_settings, run_id=cli_run_id, finder=finder, dream=dream, matched=3, new=0
    )
    assert _lookups(atlas_settings, finder, dream) == matching  # nothing recorded twice


def test_noctis_deploy_registers_the_zombie_automation_and_the_limit_once(
    prefect_server: PrefectServer, deployed: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    with prefect_server.client() as api:
        before = _automations(api)

        # A second `noctis deploy` (compose runs it on every `up`) changes nothing.
        again = noctis_deploy(prefect_server, tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert FULL_NAME in again.stdout
        assert "Updated automation" not in again.stdout + again.stderr, again.stderr

        deployment = api.get(f"/deployments/name/{FULL_NAME}").json()
        dispatcher = api.get(f"/deployments/name/{DISPATCHER_FULL_NAME}").json()
        matcher = api.get(f"/deployments/name/{STANDING_FULL_NAME}").json()
        closer = api.get(f"/deployments/name/{CLOSE_FULL_NAME}").json()
        automations = _automations(api)
        limit = api.get(f"/v2/concurrency_limits/{ATLAS_WRITES_LIMIT}")
        pool = api.get(f"/work_pools/{WORK_POOL}").json()

    assert before and before[0]["updated"]
    assert automations == before  # same id, not even updated (that would reset its state)
    assert pool["type"] == "process"
    assert deployment["work_pool_name"] == WORK_POOL
    assert deployment["enforce_parameter_schema"] is True
    assert deployment["job_variables"] == {
        "env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
    }

    [automation] = automations
    assert automation["enabled"] is True
    trigger = automation["trigger"]
    assert trigger["type"] == "event"
    assert trigger["posture"] == "Proactive"
    assert set(trigger["after"]) == {"prefect.flow-run.heartbeat"}
    assert set(trigger["expect"]) == {
        "prefect.flow-run.heartbeat",
        "prefect.flow-run.Completed",
        "prefect.flow-run.Failed",
        "prefect.flow-run.Cancelled",
        "prefect.flow-run.Crashed",
    }
    assert trigger["match"] == {"prefect.resource.id": ["prefect.flow-run.*"]}
    # The study's runs and the other deployments' (a dead dispatcher pass must not hold its
    # slot for ever; a dead standing pass must not stay Running), all with heartbeats.
    assert trigger["match_related"] == {
        "prefect.resource.role": "deployment",
        "prefect.resource.id": [
            f"prefect.deployment.{d['id']}" for d in (deployment, dispatcher, matcher, closer)
        ],
    }
    for other in (dispatcher, matcher, closer):
        assert other["job_variables"] == deployment["job_variables"], other["name"]
    assert trigger["for_each"] == ["prefect.resource.id"]
    assert trigger["within"] == 90
    [action] = automation["actions"]
    assert action["type"] == "change-flow-run-state"
    assert action["state"] == "CRASHED"
    assert action["message"] == ZOMBIE_CRASH_MESSAGE.format(seconds=90)

    assert limit.status_code == 200, limit.text
    assert limit.json()["limit"] == LINK_LIMIT
    assert limit.json()["active"] is True


def test_a_run_whose_worker_dies_is_marked_crashed_and_a_rerun_converges(
    prefect_server: PrefectServer,
    deployed: subprocess.CompletedProcess[str],
    start_worker: StartWorker,
    atlas_settings: Settings,
    augur_stub: AugurStub,
    tmp_path: Path,
) -> None:
    """Kill the worker mid-run (SIGKILL, with its flow-run process): the automation crashes
    the run. A 10 s window stands in for the 90 s one so the test is quick. The run had
    committed: its ``completed`` waits in the outbox, and the dispatcher, run by the crash
    automation, delivers it under the same key (and announces no ``failed``)."""
    window = 10
    _register(prefect_server, zombie_after=timedelta(seconds=window))
    try:
        finder, dream, matching = _seed(atlas_settings)
        # The run hangs telling Augur: mid-run. Only its completed: a dispatcher pass may also
        # announce a dead run of an earlier test on this server, and must not take the stall.
        augur_stub.script(
            [Reply(stall=120)],
            only=lambda body: (
                isinstance(body, dict)
                and body.get("event") == "imagery-finder-study.completed"
                and body.get("dream_pk") == dream
            ),
        )
        worker = start_worker()
        with prefect_server.client() as api:
            deployment_id = _deployment_id(api)
            created = _create_flow_run(
                api, deployment_id, {"imagery_finder_pk": finder, "dream_pk": dream}, "doomed"
            )
            assert created.status_code == 201, created.text
            run_id = created.json()["id"]
            _wait_for_notifications(augur_stub, 1, of_run=run_id)
            _wait_for_heartbeat(api, run_id)

            # The run heartbeats at the interval the automation's window assumes.
            flow_run_env = worker.flow_run_environ()
            assert flow_run_env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT_SECONDS)

            worker.kill()
            killed = time.monotonic()
            # RUNNING, or already CRASHED: the test's 10 s window is shorter than the 30 s
            # heartbeat, so the automation may fire before the kill on a slow machine.
            assert api.get(f"/flow_runs/{run_id}").json()["state"]["type"] in {"RUNNING", "CRASHED"}
            start_worker(wait=False)  # a replacement: it must not pick up the dead run

            crashed = _wait_for_state(api, run_id, TERMINAL, timeout=window + 45)
            print(f"\nrun marked {crashed['state']['type']} {time.monotonic() - killed:.1f} s "
                  f"after its worker was killed ({window} s window)")  # fmt: skip
            assert crashed["state"]["type"] == "CRASHED"
            # The zombie automation, or the stuck-run one when the Running event reached the
            # server more than the 10 s window after Pending (a slow start): both are Noctis'.
            assert crashed["state"]["message"] in {
                ZOMBIE_CRASH_MESSAGE.format(seconds=window),
                STUCK_CRASH_MESSAGE.format(seconds=window),
            }
            # The link step had committed before the worker died.
            assert _lookups(atlas_settings, finder, dream) == matching
            # The dispatcher delivers the dead run's completed: the same key, nothing else.
            stalled, delivered = _wait_for_notifications(augur_stub, 2, timeout=240, of_run=run_id)
            print(f"the dead run's completed delivered {delivered.time - killed:.1f} s after "
                  "its worker was killed")  # fmt: skip
            key = _outbox_key(atlas_settings, run_id)
            assert stalled.header("Idempotency-Key") == delivered.header("Idempotency-Key") == key
            assert stalled.body == delivered.body and delivered.taken
            time.sleep(2)
            assert len(_of_run(augur_stub, run_id)) == 2  # no failed: its update committed

            # Augur (or an operator) reruns the study: it converges, nothing is doubled. The
            # 90 s window again first: with the 10 s one (shorter than the 30 s heartbeat) a
            # rerun that takes more than 10 s after its first heartbeat would be crashed.
            _register(prefect_server)
            augur_stub.reset()
            rerun = _create_flow_run(
                api, deployment_id, {"imagery_finder_pk": finder, "dream_pk": dream}, "rerun"
            )
            assert rerun.status_code == 201, rerun.text
            rerun_id = rerun.json()["id"]
            done = _wait_for_state(api, rerun_id, TERMINAL)
            assert done["state"]["type"] == "COMPLETED", done["state"]
        [notification] = _wait_for_notifications(augur_stub, 1, of_run=rerun_id)
        _check_notification(
            notification,
            atlas_settings,
            run_id=rerun_id,
            finder=finder,
            dream=dream,
            matched=3,
            new=0,
        )
        assert _lookups(atlas_settings, finder, dream) == matching
    finally:
        _register(prefect_server)  # back to the 90 s window


def test_a_run_that_goes_running_and_never_heartbeats_is_marked_crashed(
    prefect_server: PrefectServer, deployed: subprocess.CompletedProcess[str]
) -> None:
    """A flow-run process that dies after setting its run Running and before its first
    heartbeat (found by the chaos run): neither the zombie automation (it waits for a first
    heartbeat) nor the stuck one (it waits for Running) sees it; the silent-run automation
    crashes it. A 10 s window here; by default the longer of the zombie window and 120 s, so a
    slow start is never crashed."""
    window = 10
    _register(prefect_server, silent_after=timedelta(seconds=window))
    try:
        with prefect_server.client() as api:
            created = _create_flow_run(
                api, _deployment_id(api), {"imagery_finder_pk": 1, "dream_pk": 1}, "silent"
            )
            assert created.status_code == 201, created.text
            run_id = created.json()["id"]
            # What a worker and then its flow-run process do as they start; then nothing.
            for state in ("PENDING", "RUNNING"):
                answer = api.post(
                    f"/flow_runs/{run_id}/set_state",
                    json={"state": {"type": state}, "force": True},
                )
                assert answer.status_code in (200, 201), answer.text
            started = time.monotonic()
            crashed = _wait_for_state(api, run_id, TERMINAL, timeout=window + 60)
        print(f"\nrun marked {crashed['state']['type']} {time.monotonic() - started:.1f} s "
              f"after Running ({window} s window)")  # fmt: skip
        assert crashed["state"]["type"] == "CRASHED"
        assert crashed["state"]["message"] == SILENT_CRASH_MESSAGE.format(seconds=window)
    finally:
        _register(prefect_server)


def test_a_crashed_run_is_announced_failed_within_two_minutes(
    prefect_server: PrefectServer,
    deployed: subprocess.CompletedProcess[str],
    start_worker: StartWorker,
    atlas_settings: Settings,
    augur_stub: AugurStub,
) -> None:
    """The whole path of a crash notice, as it runs in production: the run ends Crashed, the
    server emits the event, the crash automation runs the dispatcher's deployment, the worker
    starts that pass (its queue ahead of the studies') and the pass announces the run to Augur
    as ``failed``, under the run's key. Within the issue's 2 minutes of the run's end."""
    finder, dream, _ = _seed(atlas_settings)
    start_worker()
    with prefect_server.client() as api:
        # A run of the deployment the worker must not start: due in an hour. It then "dies"
        # (what the zombie, stuck and silent automations, or a worker's crash report, set).
        later = (datetime.now().astimezone() + timedelta(hours=1)).isoformat()
        created = api.post(
            f"/deployments/{_deployment_id(api)}/create_flow_run",
            json={
                "parameters": {"imagery_finder_pk": finder, "dream_pk": dream},
                "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": later}},
            },
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        answer = api.post(
            f"/flow_runs/{run_id}/set_state",
            json={"state": {"type": "CRASHED", "message": "exit code -9"}, "force": True},
        )
        assert answer.status_code in (200, 201), answer.text
        ended = time.monotonic()
        [notice] = _wait_for_notifications(augur_stub, 1, timeout=CRASH_NOTICE_BOUND, of_run=run_id)
    took = notice.time - ended
    print(f"\nthe crashed run announced failed {took:.1f} s after it ended")
    assert notice.json["event"] == "imagery-finder-study.failed"
    assert notice.header("Idempotency-Key") == failed_key(finder, dream, run_id)
    assert notice.json["error"].endswith(" ended Crashed: exit code -9")
    assert took <= CRASH_NOTICE_BOUND
