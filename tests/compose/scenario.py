"""The compose stack started for real, end to end: `tests/compose/run` (issue 9).

Real images (the Noctis image built from deploy/Dockerfile, Prefect, PostgreSQL, PostGIS; the
local stand-ins of deploy/local-images unless ``--official-images``), real Prefect server and
worker containers, real PostGIS; nothing mocked. The stack gets an Augur stand-in as one more
service (compose.augur.yml) and runs under its own project name, so it shares a Docker engine
with anything else. Every request the scenario makes goes to a port the stack publishes on
127.0.0.1; the containers talk to each other on the stack's network only.

Steps (each prints what it measured):

 1. .env from example.env (random passwords and token, the image overrides, free ports);
    ``docker compose build``; ``up -d --wait``; atlas-migrate and the registrar exit 0, the
    worker is healthy and online; every container runs as non-root.
 2. A synthetic archive of 50,000 items, COPYed into Atlas through 127.0.0.1.
 3. One study triggered over REST with an idempotency key, as Augur does: it completes, its
    lookup rows are the match rule's (an independent SQL formulation) with the right coverage,
    Augur gets exactly one ``completed`` notification with the right body and headers; the same
    key again returns the same run and creates none. Up -> first completed study is timed.
 4. ``--scale prefect-worker=3``; ``docker kill`` of the worker running a study (held mid-run by
    a stalled Augur), the third worker brought back; then 30 studies triggered at once on the
    3 workers, ``docker compose restart atlas-postgres`` while they run (when several are
    RUNNING, and again while some remain, up to three times, 20 s apart): all complete (their
    tasks retry), rows as the rule says, nothing duplicated or lost, 30 notifications. Meanwhile
    the killed run ends Crashed by the zombie-run automation (~90 s after the kill: the burst
    runs during that wait); its rerun converges, nothing recorded twice.
 5. The backups of deploy/README.md: pg_dump of both databases, Atlas' dump restored next to
    it (same rows), then Atlas dropped and restored from it for real (Prefect stopped);
    ``docker compose down`` then ``up -d --wait``: the deployment, the work pool, the run
    history and every Atlas row are there, and a study still runs.
 6. No secret in any container's logs; image sizes; ``docker compose down -v`` whatever happened.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.compose.atlas import Atlas, Study, load_archive
from tests.compose.prefect_api import TERMINAL, PrefectApi, RetryingTransport, seconds
from tests.compose.stack import (
    Redactor,
    Stack,
    docker,
    free_port,
    image_size_mb,
    process_uids,
    write_env,
)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WORK_POOL = "noctis-pool"
ARCHIVE_SIZE = 50_000
CONCURRENT_STUDIES = 30
ZOMBIE_TIMEOUT = 240  # the automation's 90 s window + heartbeat interval + evaluation, with room
# A flow run is a new Python process (~11 s of CPU in all): 30 at once on 2 cores take
# minutes, many more on a machine shared with other work. Generous bounds; the summary prints
# what it took.
RUN_TIMEOUT = 300
BURST_TIMEOUT = 1200
NOTIFY_PATH = "/api/v1/dreams/{dream_pk}/divinations/continue"

timings: dict[str, float] = {}


def say(text: str) -> None:
    print(text, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    say(f"\n== {title}")
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    timings[title] = elapsed
    say(f"   ({elapsed:.1f} s)")


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(every)


# ------------------------------------------------------------------- Augur ----


class Augur:
    """The stand-in's control endpoints, on its 127.0.0.1 published port."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)
        self.token = token

    def requests(self) -> list[dict[str, Any]]:
        response = self.http.get("/_stand-in/requests")
        response.raise_for_status()
        return list(response.json())

    def script(self, replies: list[dict[str, Any]]) -> None:
        self.http.post("/_stand-in/script", json=replies).raise_for_status()

    def reset(self) -> None:
        self.http.post("/_stand-in/reset").raise_for_status()

    def wait_for(self, count: int, timeout: float = RUN_TIMEOUT) -> list[dict[str, Any]]:
        def enough() -> list[dict[str, Any]] | None:
            requests = self.requests()
            return requests if len(requests) >= count else None

        return list(wait_until(f"{count} notification(s) at the Augur stand-in", enough, timeout))

    def check(
        self, request: dict[str, Any], study: Study, run: dict[str, Any], matched: int
    ) -> None:
        """One ``completed`` notification of ``run``: path, headers, body."""
        run_id = run["id"]
        headers = request["headers"]
        assert request["method"] == "POST", request["method"]
        assert request["path"] == NOTIFY_PATH.format(dream_pk=study.dream), request["path"]
        # The outbox's key: the committed update's, the same on every attempt (issue 12).
        key = headers.get("idempotency-key") or ""
        study_key = f"noctis:imagery-finder-{study.finder}:dream-{study.dream}"
        assert re.fullmatch(rf"{study_key}:update-\d+:completed", key), key
        assert headers.get("authorization") == f"Bearer {self.token}", "wrong Authorization"
        assert headers.get("user-agent", "").startswith("noctis/"), headers.get("user-agent")
        assert headers.get("content-type", "").startswith("application/json")
        body = dict(request["json"])
        coverage = body.pop("coverage")
        new_count = body.pop("new_count")
        plan_scenes = body.pop("plan_scenes")  # the coverage plan (issue 15)
        plan_coverage = body.pop("plan_coverage")
        assert body == {
            "event": "imagery-finder-study.completed",
            "dream_pk": study.dream,
            "imagery_finder_pk": study.finder,
            "flow_run_id": run_id,
            "matched_count": matched,
        }, body
        assert 0 <= new_count <= matched, new_count
        if matched:
            assert coverage is not None and 0 < coverage <= 1, coverage
            assert plan_scenes is not None and 1 <= plan_scenes <= matched, plan_scenes
            # The plan's areas (shapely) and coverage (PostGIS) read edges alike, straight in
            # lon/lat, but the two libraries' overlays and chords may differ by a hair, so a
            # plan may seem to cover a hair more than the union.
            assert plan_coverage is not None and 0 < plan_coverage <= coverage * 1.005, (
                f"plan_coverage {plan_coverage} > coverage {coverage}"
            )
        else:
            assert coverage in (0, 0.0, None), coverage
            assert plan_scenes in (0, None), plan_scenes


def completed_for(requests: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [
        r
        for r in requests
        if (r.get("json") or {}).get("flow_run_id") == run_id
        and (r.get("json") or {}).get("event") == "imagery-finder-study.completed"
    ]


# ---------------------------------------------------------------- scenario ----


class Scenario:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="noctis-compose-"))
        self.workdir.chmod(0o700)
        self.passwords = {
            "ATLAS_DB_PASSWORD": secrets.token_urlsafe(18),
            "PREFECT_DB_PASSWORD": secrets.token_urlsafe(18),
            "NOCTIS_AUGUR_API_TOKEN": secrets.token_urlsafe(24),
        }
        self.redact = Redactor(self.passwords.values())
        self.ports = {
            "PREFECT_PUBLISHED_PORT": free_port(4200),
            "ATLAS_DB_PUBLISHED_PORT": free_port(),
            "AUGUR_PUBLISHED_PORT": free_port(),
        }
        self.images = self._image_overrides()
        self.noctis_image = f"{args.project}/noctis:ci"
        overrides = {
            **self.passwords,
            **{k: str(v) for k, v in self.ports.items()},
            **self.images,
            "NOCTIS_IMAGE": self.noctis_image,
            "NOCTIS_AUGUR_API_URL": "http://augur:8080",
            "PREFECT_UI_API_URL": f"http://localhost:{self.ports['PREFECT_PUBLISHED_PORT']}/api",
            "PREFECT_API_URL": f"http://127.0.0.1:{self.ports['PREFECT_PUBLISHED_PORT']}/api",
        }
        env_file = self.workdir / ".env"
        write_env(ROOT / "example.env", env_file, overrides)
        self.stack = Stack(
            ROOT,
            args.project,
            env_file,
            [ROOT / "compose.yml", HERE / "compose.augur.yml"],
            self.redact,
        )
        self.api = PrefectApi(f"http://127.0.0.1:{self.ports['PREFECT_PUBLISHED_PORT']}/api")
        self.augur = Augur(
            f"http://127.0.0.1:{self.ports['AUGUR_PUBLISHED_PORT']}",
            self.passwords["NOCTIS_AUGUR_API_TOKEN"],
        )
        self.atlas = Atlas(
            f"postgresql://atlas_user:{self.passwords['ATLAS_DB_PASSWORD']}"
            f"@127.0.0.1:{self.ports['ATLAS_DB_PUBLISHED_PORT']}/augur"
        )
        self.deployment_id = ""
        self.up_started = 0.0
        self.earlier_logs = ""

    def _image_overrides(self) -> dict[str, str]:
        if self.args.official_images:
            return {}
        out = subprocess.run(
            [str(ROOT / "deploy" / "local-images" / "build"), "--print-env"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        images = dict(line.split("=", 1) for line in out.split() if "=" in line)
        for image in images.values():
            docker("image", "inspect", "-f", "{{.Id}}", image)  # built? (deploy/local-images/build)
        return images

    # ------------------------------------------------------------- helpers ----

    def trigger(self, study: Study, key: str | None = None) -> str:
        key = key or f"augur:dream-{study.dream}:finder-{study.finder}:{uuid.uuid4()}"
        resent = sum(RetryingTransport.retried.values())
        created = self.api.create_flow_run(self.deployment_id, study.parameters, key)
        # 200 (the run of this key exists) only when the transport resent a request whose
        # answer timed out after the server had created the run.
        resent_now = sum(RetryingTransport.retried.values()) > resent
        assert created.status_code == 201 or (created.status_code == 200 and resent_now), (
            f"{study.label}: HTTP {created.status_code} {created.text}"
        )
        return str(created.json()["id"])

    def check_rows(self, study: Study) -> int:
        """The lookup rows of ``study`` are the match rule's; their number."""
        expected, recorded = self.atlas.expected(study), self.atlas.lookups(study)
        assert recorded == expected, (
            f"{study.label}: {len(recorded)} lookup rows, the match rule gives {len(expected)}; "
            f"missing {sorted(set(expected) - set(recorded))[:5]}, "
            f"extra {sorted(set(recorded) - set(expected))[:5]}"
        )
        wrong = self.atlas.coverage_mismatches(study)
        assert not wrong, f"{study.label}: coverage (item, recorded, reference): {wrong[:5]}"
        return len(expected)

    def worker_running(self, run_id: str) -> str:
        """The worker container that runs the flow run ``run_id``: the Noctis worker logs the
        process it forked for it (a fork's /proc/PID/environ is its forkserver's); a process
        worker's ``python -m prefect.engine`` carries the id in its environment."""
        for container in self.stack.containers("prefect-worker"):
            logs = subprocess.run(
                ["docker", "logs", container["Name"]],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            if f"Flow run {run_id} forked as process" in logs.stdout + logs.stderr:
                return str(container["Name"])
            probe = subprocess.run(
                ["docker", "exec", container["Name"], "sh", "-c",
                 f"grep -l -s -a '{run_id}' /proc/[0-9]*/environ"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            if probe.returncode == 0 and probe.stdout.strip():
                return str(container["Name"])
        return ""

    def check_non_root(self) -> None:
        for container in self.stack.containers(all_states=True):
            name = container["Name"]
            if container["State"] == "running":
                # The main process and its descendants: what the container runs. Health
                # checks are `docker exec`s beside them, counted apart.
                rows, execs = process_uids(name)
                root = [command for uid, command in rows if uid == 0]
                assert not root, f"{name} runs as root: {root}"
                uids = sorted({uid for uid, _ in rows})
                beside = f", {len(execs)} exec(s) beside them" if execs else ""
                say(f"   {container['Service']:<15} uid {','.join(map(str, uids))} "
                    f"({len(rows)} processes{beside})")  # fmt: skip
            else:  # one-shot, exited: the user it ran as
                user = docker("inspect", "-f", "{{.Config.User}}", name)
                assert user not in ("", "0", "root") and not user.startswith("0:"), (name, user)
                say(f"   {container['Service']:<15} user {user} (exited)")

    # --------------------------------------------------------------- steps ----

    def clear_leftovers(self) -> None:
        """Remove what an interrupted run of the same project left: containers and volumes.

        A run killed before its ``down -v`` leaves its volumes behind. ``up`` would recreate the
        containers on databases initialised with that run's passwords, and every login of this
        run would fail (CI at 70cfdec: "password authentication failed for user prefect").
        """
        label = f"label=com.docker.compose.project={self.args.project}"
        left = self.stack.containers(all_states=True)
        volumes = docker("volume", "ls", "-q", "--filter", label).split()
        if not left and not volumes:
            return
        say(f"   an earlier run left {len(left)} container(s), {len(volumes)} volume(s): removed")
        self.stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False)
        for volume in docker("volume", "ls", "-q", "--filter", label).split():
            docker("volume", "rm", "-f", volume)

    def up(self) -> None:
        with step("1. build, up -d --wait, one-shots exit 0, worker healthy, non-root"):
            say(f"   project {self.args.project}, .env in {self.workdir} (mode 0600)")
            for name, value in sorted(self.images.items()):
                say(f"   {name}={value}")
            self.stack.compose("config", "-q")
            self.clear_leftovers()
            started = time.monotonic()
            self.stack.compose("build", timeout=1800)
            timings["docker compose build"] = time.monotonic() - started
            say(f"   docker compose build: {timings['docker compose build']:.1f} s")

            self.up_started = time.monotonic()
            self.stack.compose("up", "-d", "--wait", timeout=600)
            timings["up -d --wait"] = time.monotonic() - self.up_started
            say(f"   up -d --wait: {timings['up -d --wait']:.1f} s")
            for service in ("atlas-migrate", "noctis"):
                code = self.stack.exit_code(service)
                assert code == 0, (
                    f"{service} exited {code}:\n{self.redact(self.stack.logs(service))}"
                )
                say(f"   {service} exited 0")
            timings["up -> registrar done"] = time.monotonic() - self.up_started
            self.stack.wait_healthy("prefect-worker", 1)
            wait_until(
                "a worker online in the pool", lambda: self.api.online_workers(WORK_POOL), 60
            )
            self.deployment_id = str(self.api.deployment()["id"])
            say(f"   deployment imagery-finder-study/default {self.deployment_id}, worker online")
            port = self.ports["PREFECT_PUBLISHED_PORT"]
            ui = httpx.get(f"http://127.0.0.1:{port}/", timeout=30, follow_redirects=True)
            assert ui.status_code == 200 and "<html" in ui.text.lower(), ui.status_code
            say(f"   the Prefect UI answers on 127.0.0.1:{port} (served as uid 10001)")
            self.check_non_root()

    def load_archive(self) -> None:
        with step(f"2. a synthetic archive of {ARCHIVE_SIZE:,} items into Atlas via 127.0.0.1"):
            started = time.monotonic()
            loaded = load_archive(self.atlas.dsn, ARCHIVE_SIZE)
            self.atlas.analyze()
            timings["archive load"] = time.monotonic() - started
            assert loaded == ARCHIVE_SIZE, loaded
            assert self.atlas.counts()["archive_item"] == ARCHIVE_SIZE
            say(f"   {loaded:,} items in {timings['archive load']:.1f} s")

    def first_study(self) -> None:
        with step("3. one study over REST with an idempotency key, as Augur triggers it"):
            [study] = self.atlas.create_studies(1, prefix="first")
            self.augur.reset()
            key = f"augur:dream-{study.dream}:finder-{study.finder}:{uuid.uuid4()}"
            triggered = time.monotonic()
            run_id = self.trigger(study, key)
            run = self.api.wait_for([run_id], timeout=RUN_TIMEOUT)[run_id]
            done = time.monotonic()
            assert run["state"]["type"] == "COMPLETED", run["state"]
            timings["trigger -> completed (first)"] = done - triggered
            timings["up -> first completed study"] = done - self.up_started
            timings["up -> first completed, without the archive load"] = (
                done - self.up_started - timings["archive load"]
            )
            say(f"   run {run['name']} completed; states: {self.api.timeline(run_id)}")
            matched = self.check_rows(study)
            say(f"   {matched} lookup rows = the match rule's (independent SQL), coverage checked")
            [notification] = self.augur.wait_for(1)
            time.sleep(2)  # a second notification would arrive now
            requests = self.augur.requests()
            assert len(requests) == 1, f"Augur got {len(requests)} requests"
            self.augur.check(notification, study, run, matched)
            assert notification["json"]["new_count"] == matched
            say("   Augur got exactly one `completed` notification, body and headers as documented")

            again = self.api.create_flow_run(self.deployment_id, study.parameters, key)
            assert again.status_code == 200, f"same key: HTTP {again.status_code} {again.text}"
            assert again.json()["id"] == run_id
            assert self.api.run_count(self.deployment_id) == 1
            say("   the same idempotency key again: HTTP 200, the same run, still 1 run")
            say(
                f"   up -> first completed study: {timings['up -> first completed study']:.1f} s"
                f" (archive load {timings['archive load']:.1f} s of it; trigger -> completed"
                f" {timings['trigger -> completed (first)']:.1f} s)"
            )

    def scale(self) -> list[str]:
        self.stack.compose("up", "-d", "--wait", "--scale", "prefect-worker=3", timeout=600)
        return self.stack.wait_healthy("prefect-worker", 3)

    def kill_a_worker(self) -> tuple[Study, str, int, float]:
        """A study held mid-run (its Augur reply stalled), its worker killed: (the study, its
        run, its rows, the wall-clock time of the kill)."""
        [study] = self.atlas.create_studies(1, prefix="doomed")
        self.augur.reset()
        self.augur.script([{"status": 200, "stall": 600}])  # the run hangs telling Augur
        run_id = self.trigger(study)
        [stalled] = self.augur.wait_for(1)  # mid-run: the link step is committed, the notify hangs
        self.stalled_key = stalled["headers"].get("idempotency-key")
        wait_until("the run's first heartbeat", lambda: self.api.has_heartbeat(run_id), 60)
        victim = wait_until("the worker running it", lambda: self.worker_running(run_id), 30)
        state = self.api.flow_runs([run_id])[run_id]["state"]["type"]
        assert state == "RUNNING", state
        docker("kill", victim)
        killed = time.time()
        say(f"   killed {victim} (SIGKILL) while run {run_id[:8]} was RUNNING")
        return study, run_id, self.check_rows(study), killed  # rows committed before it died

    def restart_atlas_while(self, run_ids: list[str]) -> list[float]:
        """``docker compose restart atlas-postgres`` once several runs are RUNNING, then again
        while runs remain, up to three times. 20 s apart: longer than a task's whole retry
        schedule (1, 4 and 10 s), so each restart is one fault for the runs it hits."""
        restarts: list[float] = []
        last = 0.0
        while len(restarts) < 3:
            now = [r["state"]["type"] for r in self.api.flow_runs(run_ids).values()]
            done = sum(state in TERMINAL for state in now)
            if done == len(run_ids):
                break
            wanted = min(3, len(run_ids) - done) if not restarts else 1
            if now.count("RUNNING") >= wanted and time.monotonic() - last > 20:
                started = time.monotonic()
                self.stack.compose("restart", "atlas-postgres", timeout=120)
                last = time.monotonic()
                restarts.append(last - started)
                say(f"   atlas-postgres restarted ({restarts[-1]:.1f} s) with "
                    f"{now.count('RUNNING')} run(s) RUNNING, {done} done")  # fmt: skip
            time.sleep(0.5)
        return restarts

    def workers_burst_kill_restart(self) -> None:
        title = (
            f"4. --scale prefect-worker=3; a worker killed mid-run; {CONCURRENT_STUDIES} studies "
            "at once on 3 workers while Atlas restarts"
        )
        with step(title):
            started = time.monotonic()
            workers = self.scale()
            wait_until("3 workers online", lambda: len(self.api.online_workers(WORK_POOL)) >= 3, 90)
            say(f"   3 workers healthy and online in {time.monotonic() - started:.1f} s: "
                f"{', '.join(workers)}")  # fmt: skip
            self.check_non_root()

            # The killed run waits out the zombie-run automation's 90 s window while the burst
            # runs: the two overlap, each checked on its own.
            doomed, doomed_run, doomed_rows, killed = self.kill_a_worker()
            self.scale()  # a killed container stays down: `up` brings the third worker back
            say("   3 workers healthy again")

            studies = self.atlas.create_studies(CONCURRENT_STUDIES, prefix="burst")
            # A dispatcher pass may have delivered the killed run's completed already (its row
            # is free once the dead connection closes): kept, as the reset forgets requests.
            early = [r for r in self.augur.requests() if r["received_at"] > killed]
            self.augur.reset()  # releases the stalled reply (its caller is dead)
            before = self.atlas.counts()["archive_lookup_item"]
            burst = time.monotonic()
            with ThreadPoolExecutor(max_workers=CONCURRENT_STUDIES) as pool:
                run_ids = list(pool.map(self.trigger, studies))
            restarts = self.restart_atlas_while(run_ids)
            runs = self.api.wait_for(run_ids, timeout=BURST_TIMEOUT)
            timings[f"{CONCURRENT_STUDIES} studies at once"] = elapsed = time.monotonic() - burst
            states = sorted({r["state"]["type"] for r in runs.values()})
            assert states == ["COMPLETED"], {r["name"]: r["state"]["type"] for r in runs.values()}
            assert len(restarts) >= 1, "no run was ever RUNNING to restart Atlas under"
            retried = self.api.retried_task_runs(run_ids)
            say(f"   {len(run_ids)} runs COMPLETED {elapsed:.1f} s after the triggers, through "
                f"{len(restarts)} Atlas restart(s); {len(retried)} task run(s) retried: "
                f"{sorted({t['name'].rsplit('-', 1)[0] for t in retried})}")  # fmt: skip
            self.augur.wait_for(CONCURRENT_STUDIES)
            time.sleep(2)
            notifications = self.augur.requests()
            # Besides the burst's: only the killed run's committed completed, which the outbox
            # dispatcher delivers once its stalled caller is gone (issue 12).
            others = [r for r in notifications if (r.get("json") or {}).get("flow_run_id")
                      not in set(run_ids)]  # fmt: skip
            assert {(r["json"] or {}).get("flow_run_id") for r in others} <= {doomed_run}, others
            total = 0
            for study, run_id in zip(studies, run_ids, strict=True):
                matched = self.check_rows(study)
                [notification] = completed_for(notifications, run_id)
                self.augur.check(notification, study, runs[run_id], matched)
                total += matched
            assert self.atlas.duplicate_lookups() == 0
            assert self.atlas.counts()["archive_lookup_item"] == before + total
            say(f"   {CONCURRENT_STUDIES} notifications, one per run; {total} lookup rows added, "
                "each study's = the match rule's, none duplicated or lost")  # fmt: skip

            waited = time.time() - killed
            run = self.api.wait_for([doomed_run], timeout=max(ZOMBIE_TIMEOUT - waited, 60))[
                doomed_run
            ]
            assert run["state"]["type"] == "CRASHED", run["state"]
            assert "heartbeat" in (run["state"]["message"] or ""), run["state"]["message"]
            timings["kill -> Crashed"] = seconds(run["state"]["timestamp"]) - killed
            say(f"   the killed run CRASHED {timings['kill -> Crashed']:.1f} s after the kill: "
                f"{run['state']['message'][:90]}...")  # fmt: skip
            assert self.check_rows(doomed) == doomed_rows
            # Its update had committed: the outbox delivers its completed (the same key as the
            # stalled attempt), never a failed.
            [late] = wait_until(
                "the killed run's completed, delivered by the outbox dispatcher",
                lambda: completed_for(early + self.augur.requests(), doomed_run) or None,
                ZOMBIE_TIMEOUT,
            )
            self.augur.check(late, doomed, run, doomed_rows)
            assert late["headers"].get("idempotency-key") == self.stalled_key, late["headers"]
            events = {(r.get("json") or {}).get("event") for r in early + self.augur.requests()
                      if (r.get("json") or {}).get("flow_run_id") == doomed_run}  # fmt: skip
            assert events == {"imagery-finder-study.completed"}, events
            say("   the killed run's committed completed reached Augur through the outbox, "
                "under the key of its stalled attempt; no failed")  # fmt: skip
            self.augur.reset()
            rerun_id = self.trigger(doomed)
            rerun = self.api.wait_for([rerun_id], timeout=RUN_TIMEOUT)[rerun_id]
            assert rerun["state"]["type"] == "COMPLETED", rerun["state"]
            assert self.check_rows(doomed) == doomed_rows
            [notification] = completed_for(self.augur.wait_for(1), rerun_id)
            self.augur.check(notification, doomed, rerun, doomed_rows)
            assert notification["json"]["new_count"] == 0, notification["json"]
            say(f"   its rerun COMPLETED: {doomed_rows} rows, new_count 0, one notification")

    def backups(self) -> None:
        """deploy/README.md's backup and restore commands, run as they are written there; the
        real restore leaves Atlas restored and the Prefect server and workers stopped."""
        dump = 'pg_dump -U "$POSTGRES_USER" -d "$POSTGRES_DB" -Fc'
        atlas = self.stack.exec("atlas-postgres", dump)
        prefect = self.stack.exec("postgres", dump)
        listed = self.stack.exec("postgres", "pg_restore --list", stdin=prefect).decode()
        assert "TABLE DATA public flow_run " in listed, "Prefect's dump has no flow_run table"
        self.stack.exec(
            "atlas-postgres",
            'createdb -U "$POSTGRES_USER" restore_check '
            '&& pg_restore -U "$POSTGRES_USER" -d restore_check --no-owner --exit-on-error',
            stdin=atlas,
        )
        counts = self.atlas.counts()
        restored = self.stack.exec(
            "atlas-postgres",
            'psql -U "$POSTGRES_USER" -d restore_check -Atc '
            '"SELECT (SELECT count(*) FROM archive_item), (SELECT count(*) FROM '
            'archive_lookup_item)" && dropdb -U "$POSTGRES_USER" restore_check',
        ).decode()
        assert restored.split() == [f"{counts['archive_item']}|{counts['archive_lookup_item']}"], (
            restored
        )
        sizes = f"{len(atlas) / 1e6:.1f} MB and {len(prefect) / 1e6:.1f} MB"
        say(f"   pg_dump of Atlas and of Prefect's database ({sizes}); Atlas' restored")
        say("   into a new database next to it: the same rows")

        # The real restore, as deploy/README.md gives it: what writes stopped, the database
        # recreated from the dump. The `up` that follows it is the one after `down` below.
        self.stack.compose("stop", "prefect-worker", "prefect-server", timeout=120)
        self.stack.exec(
            "atlas-postgres",
            'dropdb -U "$POSTGRES_USER" --force "$POSTGRES_DB" '
            '&& createdb -U "$POSTGRES_USER" "$POSTGRES_DB" '
            '&& pg_restore -U "$POSTGRES_USER" -d "$POSTGRES_DB" --no-owner --exit-on-error',
            stdin=atlas,
        )
        say("   Atlas dropped and recreated from its dump (Prefect server and workers stopped)")

    def down_and_up(self) -> None:
        with step("5. backups and a restore; docker compose down, then up -d --wait: all back"):
            counts = self.atlas.counts()
            lookups = sorted(self.atlas.lookups_all())
            pool = self.api.work_pool(WORK_POOL)
            runs = self.api.run_count(self.deployment_id)
            self.backups()
            self.earlier_logs = self.stack.logs()  # `down` removes the containers and their logs
            self.stack.compose("down", timeout=300)
            assert not self.stack.containers(all_states=True), "containers left after down"
            started = time.monotonic()
            self.stack.compose("up", "-d", "--wait", timeout=600)
            for service in ("noctis", "atlas-migrate"):
                assert self.stack.exit_code(service) == 0, f"{service} failed after the restart"
            timings["restart: up -d --wait (volumes kept)"] = time.monotonic() - started
            assert str(self.api.deployment()["id"]) == self.deployment_id, "deployment replaced"
            assert self.api.work_pool(WORK_POOL)["id"] == pool["id"], "work pool replaced"
            assert self.api.run_count(self.deployment_id) == runs, "run history lost"
            assert self.atlas.counts() == counts, "Atlas rows changed"
            assert sorted(self.atlas.lookups_all()) == lookups, "lookup rows changed"
            say(f"   up again in {timings['restart: up -d --wait (volumes kept)']:.1f} s: same "
                f"deployment, work pool, {runs} runs; Atlas, restored from its dump, has every "
                f"row back {counts}")  # fmt: skip
            self.stack.wait_healthy("prefect-worker", 1)
            [study] = self.atlas.create_studies(1, prefix="after-restart")
            self.augur.reset()
            run_id = self.trigger(study)
            run = self.api.wait_for([run_id], timeout=RUN_TIMEOUT)[run_id]
            assert run["state"]["type"] == "COMPLETED", run["state"]
            self.check_rows(study)
            say("   and a new study completes")

    def secrets_and_sizes(self) -> None:
        with step("6. no secret in the logs; image sizes"):
            logs = self.earlier_logs + self.stack.logs()
            leaked = [name for name, value in self.passwords.items() if value in logs]
            assert not leaked, f"secret values in `docker compose logs`: {leaked}"
            say(f"   {len(logs.splitlines())} log lines, no password or token in them")
            late = logs.count("Action failed: 'Failed to set state: Run is already in terminal")
            if late:
                say(
                    f"   note: the zombie-run automation fired {late} time(s) on runs already "
                    "finished (its Completed event reached the trigger >90 s late); harmless"
                )
            images = sorted({c["Image"] for c in self.stack.containers(all_states=True)})
            for image in images:
                say(f"   {image:<45} {image_size_mb(image):7.0f} MB")

    # ---------------------------------------------------------------- main ----

    def run(self) -> int:
        started = time.monotonic()
        failed = False
        try:
            steps = [
                self.up,
                self.load_archive,
                self.first_study,
                self.workers_burst_kill_restart,
                self.down_and_up,
                self.secrets_and_sizes,
            ]
            for number, run_step in enumerate(steps, start=1):
                if number <= 2 or not self.args.steps or number in self.args.steps:
                    run_step()
        except BaseException as e:
            failed = True
            say(f"\nFAILED: {self.redact(str(e))}")
            self.diagnose()
            if not isinstance(e, AssertionError | subprocess.SubprocessError | OSError):
                raise
        finally:
            self.finish()
        say("\n== summary")
        for name, took in timings.items():
            say(f"   {name:<55} {took:7.1f} s")
        say(f"   {'whole scenario':<55} {time.monotonic() - started:7.1f} s")
        if RetryingTransport.retried:
            say(f"   Prefect API requests resent after an error: {RetryingTransport.retried}")
        say("FAILED" if failed else "PASSED: the compose stack, end to end")
        return 1 if failed else 0

    def save_logs(self) -> None:
        """Every service's whole log, secrets masked, to --logs (kept after the stack is gone)."""
        try:
            self.args.logs.mkdir(parents=True, exist_ok=True)
            target = self.args.logs / f"{self.args.project}.log"
            logs = self.earlier_logs + self.stack.logs()
            target.write_text(self.redact(logs), encoding="utf-8")
            say(f"\n   the stack's logs (secrets masked): {target}")
        except Exception as e:
            say(f"   (could not save the logs: {self.redact(str(e))})")

    def diagnose(self) -> None:
        try:
            rows = self.stack.containers(all_states=True)
            for row in rows:
                say(f"   {row['Name']}: {row['State']} {row.get('Health', '')} {row['Status']}")
            say(self.redact(self.stack.logs(tail=60))[-12000:])
        except Exception as e:
            say(f"   (no diagnostics: {self.redact(str(e))})")

    def finish(self) -> None:
        self.api.close()
        self.save_logs()
        if self.args.keep:
            say(f"\n--keep: the stack is up. Remove it with:\n   docker compose -p "
                f"{self.args.project} --env-file {self.stack.env_file} -f compose.yml "
                f"-f tests/compose/compose.augur.yml down -v")  # fmt: skip
            return
        self.stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False)
        left = self.stack.containers(all_states=True)
        say(f"\n== docker compose down -v: {'done' if not left else f'left {left}'}")
        shutil.rmtree(self.workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="The compose stack, end to end (issue 9).")
    parser.add_argument("--project", default="noctis-e2e", help="compose project name")
    parser.add_argument(
        "--official-images",
        action="store_true",
        help="use the official images (a registry must be reachable), not deploy/local-images",
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack up at the end")
    parser.add_argument(
        "--steps",
        type=lambda text: {int(n) for n in text.split(",")},
        default=set(),
        help="run only these steps (e.g. 3,6; 1 and 2 always run), to debug one",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "noctis-compose-logs",
        help="where the stack's logs are saved at the end (default: %(default)s)",
    )
    return Scenario(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
