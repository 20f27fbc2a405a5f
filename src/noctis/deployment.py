"""Register ``imagery-finder-study/default`` on the work pool the compose worker serves.

The deployment's entrypoint is a module path (``noctis.flows.imagery_finder_study:...``):
a worker built from the Noctis image imports the installed package, nothing is
pulled. Parameters are enforced by the server against the flow's schema, so a
bad trigger (a pk of 0, a string) is refused before any run exists.

Next to the deployment, :func:`register` keeps these server objects in shape, all by name and
idempotently (a second call updates, never duplicates; an unchanged automation is left alone):

* the zombie-run automation (:data:`ZOMBIE_AUTOMATION_NAME`): Prefect's documented
  "detect zombie flows" automation, scoped to this deployment's runs. A run of the deployment
  sends a ``prefect.flow-run.heartbeat`` every :data:`HEARTBEAT_SECONDS` (the deployment sets
  ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` in its job variables, whatever the worker's own
  environment says); when neither a heartbeat nor a terminal state follows a heartbeat within
  ``zombie_after`` (90 s by default), the server marks the run ``Crashed``. A run whose
  worker died therefore never stays ``Running`` forever. ``zombie_after`` must stay well above
  the heartbeat interval, or live runs get crashed: 3 heartbeats is the documented margin.
* the global concurrency limit :data:`ATLAS_WRITES_LIMIT` (``noctis_link_concurrency_limit``
  slots), which the flow's link step occupies, so N workers cannot open N * limit Atlas writes;
* the outbox dispatcher, ``noctis-outbox-dispatcher/default``, on the same pool, scheduled every
  ``noctis_outbox_dispatch_seconds`` (:mod:`noctis.flows.outbox_dispatcher`). Its runs go to
  the pool's work queue :data:`DISPATCH_QUEUE`, kept at priority 1 (the highest): a worker takes
  scheduled runs by queue priority first and scheduled time second, so a crash notice or a
  delivery pass is the next run a busy worker starts, never behind a burst of studies (the
  full-size chaos run saw 2 passes in 19 minutes while 200 studies shared one queue);
* the stuck-run automation (:data:`STUCK_AUTOMATION_NAME`): a run left Pending by a worker
  that died before its flow-run process started is marked ``Crashed`` after ``zombie_after``;
* the silent-run automation (:data:`SILENT_AUTOMATION_NAME`): a run whose flow-run process
  died after setting it Running but before its first heartbeat is marked ``Crashed`` after
  ``silent_after`` (at least :data:`DEFAULT_SILENT_AFTER`). The three watch the runs of all
  four deployments;
* the crash-notice automation (:data:`CRASH_AUTOMATION_NAME`): when a run of the study's
  deployment ends Crashed or Cancelled, it runs the dispatcher at once, which announces the run
  to Augur as ``failed``; the dispatcher's schedule catches any event the automation misses
  (and any pass the deployment's limit of one pass at a time cancelled);
* the standing matcher, ``standing-match/default``, every ``noctis_standing_match_seconds`` and
  on every ``noctis.archive.loaded`` event (a deployment trigger), and ``close-study/default``,
  which Augur runs to close a standing study (:mod:`noctis.flows.standing`).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
    StateType,
)
from prefect.events import DeploymentEventTrigger
from prefect.events.actions import ChangeFlowRunState, RunDeployment
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.types.entrypoint import EntrypointType

from noctis import __version__
from noctis.flows.imagery_finder_study import ATLAS_WRITES_LIMIT, imagery_finder_study
from noctis.flows.outbox_dispatcher import outbox_dispatcher
from noctis.flows.standing import LOADED_EVENT, close_study, match_every, standing_match

logger = logging.getLogger(__name__)

DEPLOYMENT_NAME = "default"
FULL_NAME = f"{imagery_finder_study.name}/{DEPLOYMENT_NAME}"

DISPATCHER_FULL_NAME = f"{outbox_dispatcher.name}/{DEPLOYMENT_NAME}"
DISPATCH_QUEUE = "noctis-dispatch"  # the dispatcher's work queue, ahead of the pool's default
STANDING_FULL_NAME = f"{standing_match.name}/{DEPLOYMENT_NAME}"
CLOSE_FULL_NAME = f"{close_study.name}/{DEPLOYMENT_NAME}"

HEARTBEAT_SECONDS = 30  # Prefect's minimum; set on the deployment's runs (job variables)
DEFAULT_ZOMBIE_AFTER = timedelta(seconds=90)  # 3 missed heartbeats
ZOMBIE_AUTOMATION_NAME = "noctis: crash zombie imagery-finder-study runs"
ZOMBIE_CRASH_MESSAGE = (
    "Marked Crashed by Noctis' zombie-run automation: no heartbeat for {seconds} s "
    "(the worker or its flow-run process died). Rerunning the study is safe: it records "
    "nothing twice."
)

STUCK_AUTOMATION_NAME = "noctis: crash imagery-finder-study runs that never start"
STUCK_CRASH_MESSAGE = (
    "Marked Crashed by Noctis' stuck-run automation: Pending for {seconds} s without starting "
    "(its worker died before the flow-run process began). Rerunning the study is safe."
)
SILENT_AUTOMATION_NAME = "noctis: crash imagery-finder-study runs that never heartbeat"
SILENT_CRASH_MESSAGE = (
    "Marked Crashed by Noctis' silent-run automation: Running for {seconds} s without a "
    "heartbeat (its flow-run process died as it started). Rerunning the study is safe."
)
DEFAULT_SILENT_AFTER = timedelta(seconds=4 * HEARTBEAT_SECONDS)
PENDING_EVENT = "prefect.flow-run.Pending"
RUNNING_EVENT = "prefect.flow-run.Running"

CRASH_AUTOMATION_NAME = "noctis: announce crashed or cancelled imagery-finder-study runs"
CRASH_EVENTS = frozenset({"prefect.flow-run.Crashed", "prefect.flow-run.Cancelled"})

# What a flow run of this deployment ends its life with (state events the server emits).
TERMINAL_EVENTS = frozenset(
    f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed")
)
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"


async def ensure_work_pool(name: str) -> None:
    async with get_client() as client:
        try:
            await client.read_work_pool(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another registrar won the race
                await client.create_work_pool(WorkPoolCreate(name=name, type="process"))


async def ensure_priority_queue(pool: str, name: str) -> None:
    """Create the work queue ``name`` in ``pool`` at priority 1 (the highest), or move it back
    there; the server shifts the pool's other queues down to keep priorities distinct."""
    async with get_client() as client:
        try:
            queue = await client.read_work_queue_by_name(name, work_pool_name=pool)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another registrar won the race
                await client.create_work_queue(
                    name,
                    description="Noctis' outbox dispatcher: delivery and crash notices first.",
                    priority=1,
                    work_pool_name=pool,
                )
            return
        if queue.priority != 1:
            await client.update_work_queue(queue.id, priority=1)


def _watch(
    *,
    name: str,
    description: str,
    after: set[str],
    expect: set[str],
    within: timedelta,
    message: str,
    deployments: tuple[UUID, ...],
) -> AutomationCore:
    """A proactive automation on each flow run of ``deployments``: once an ``after`` event was
    seen, it marks the run Crashed with ``message`` unless an ``expect`` event follows within
    ``within``. The shape of the zombie, stuck and silent automations."""
    return AutomationCore(
        name=name,
        description=f"{description} Managed by `noctis deploy`.",
        enabled=True,
        tags=["noctis"],
        trigger=EventTrigger(
            posture=Posture.Proactive,
            after=after,
            expect=expect,
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {
                    "prefect.resource.role": "deployment",
                    "prefect.resource.id": [f"prefect.deployment.{d}" for d in deployments],
                }
            ),
            for_each={"prefect.resource.id"},
            threshold=1,
            within=within,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=message)],
    )


def zombie_automation(
    deployment_id: UUID,
    *,
    zombie_after: timedelta = DEFAULT_ZOMBIE_AFTER,
    also: tuple[UUID, ...] = (),
) -> AutomationCore:
    """The documented zombie-flow automation, limited to the runs of ``deployment_id`` (and of
    the deployments in ``also``: the outbox dispatcher's, whose dead pass would otherwise hold
    its one-pass-at-a-time slot for ever and cancel every later pass; the standing ones).

    Prefect's recipe matches every flow run of the server; this one also requires the related
    deployment, so Noctis never crashes another team's run that heartbeats at Prefect's
    default interval (180 s in Prefect 3.9, longer than our 90 s window).
    """
    seconds = int(zombie_after.total_seconds())
    return _watch(
        name=ZOMBIE_AUTOMATION_NAME,
        description=(
            f"Marks a run of {FULL_NAME} Crashed when it has sent no heartbeat and reached no "
            f"terminal state for {seconds} s after a heartbeat."
        ),
        after={HEARTBEAT_EVENT},
        expect={HEARTBEAT_EVENT, *TERMINAL_EVENTS},
        within=zombie_after,
        message=ZOMBIE_CRASH_MESSAGE.format(seconds=seconds),
        deployments=(deployment_id, *also),
    )


def stuck_automation(
    deployment_id: UUID,
    *,
    stuck_after: timedelta = DEFAULT_ZOMBIE_AFTER,
    also: tuple[UUID, ...] = (),
) -> AutomationCore:
    """Marks Crashed a run of ``deployment_id`` Pending for ``stuck_after`` without Running.

    A worker sets a run Pending when it takes it, then starts its flow-run process, which sets
    it Running and heartbeats. A worker killed in between leaves the run Pending with no
    heartbeat, which the zombie automation never sees: this one crashes it, so the crash
    automation announces it.
    """
    seconds = int(stuck_after.total_seconds())
    return _watch(
        name=STUCK_AUTOMATION_NAME,
        description=(
            f"Marks a run of {FULL_NAME} Crashed when it stays Pending for {seconds} s without "
            "starting."
        ),
        after={PENDING_EVENT},
        expect={RUNNING_EVENT, *TERMINAL_EVENTS},
        within=stuck_after,
        message=STUCK_CRASH_MESSAGE.format(seconds=seconds),
        deployments=(deployment_id, *also),
    )


def silent_automation(
    deployment_id: UUID,
    *,
    silent_after: timedelta = DEFAULT_SILENT_AFTER,
    also: tuple[UUID, ...] = (),
) -> AutomationCore:
    """Marks Crashed a run of ``deployment_id`` Running for ``silent_after`` without a first
    heartbeat or an end.

    The gap between the two others: a flow-run process killed after it set its run Running
    but before its first heartbeat reached the server (the chaos run found one). A healthy run
    heartbeats seconds after Running; the window is at least :data:`DEFAULT_SILENT_AFTER`
    whatever the zombie window, so a short zombie window (tests) never crashes a slow start.
    """
    seconds = int(silent_after.total_seconds())
    return _watch(
        name=SILENT_AUTOMATION_NAME,
        description=(
            f"Marks a run of {FULL_NAME} Crashed when it has been Running for {seconds} s "
            "without a first heartbeat."
        ),
        after={RUNNING_EVENT},
        expect={HEARTBEAT_EVENT, *TERMINAL_EVENTS},
        within=silent_after,
        message=SILENT_CRASH_MESSAGE.format(seconds=seconds),
        deployments=(deployment_id, *also),
    )


def crash_automation(deployment_id: UUID, dispatcher_id: UUID) -> AutomationCore:
    """Runs the dispatcher as soon as a run of ``deployment_id`` ends Crashed or Cancelled."""
    return AutomationCore(
        name=CRASH_AUTOMATION_NAME,
        description=(
            f"Runs {DISPATCHER_FULL_NAME} when a run of {FULL_NAME} ends Crashed or Cancelled, "
            "so Augur hears of it as failed within seconds. Managed by `noctis deploy`."
        ),
        enabled=True,
        tags=["noctis"],
        trigger=EventTrigger(
            posture=Posture.Reactive,
            expect=set(CRASH_EVENTS),
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {
                    "prefect.resource.role": "deployment",
                    "prefect.resource.id": f"prefect.deployment.{deployment_id}",
                }
            ),
            threshold=1,
            within=timedelta(0),
        ),
        actions=[RunDeployment(source="selected", deployment_id=dispatcher_id, parameters={})],
    )


def _comparable(automation: AutomationCore) -> dict[str, Any]:
    """What must match for an existing automation to be left alone (ids excluded)."""
    data = automation.model_dump(
        mode="json",
        include={"description", "enabled", "tags", "trigger", "actions"},
    )
    data["trigger"].pop("id", None)
    canonical: dict[str, Any] = _canonical(data)
    return canonical


def _canonical(value: Any) -> Any:
    """Lists of strings sorted: in a trigger they are sets (``expect``, ``after``, ``for_each``)
    or any-of matches, and a set read back from the server may iterate in another order than
    the one built here (string hashes are salted per process: the same members, inserted in
    another order, can collide differently). Compared unsorted, a redeploy updated an
    unchanged automation now and then, which resets its trigger state."""
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_canonical(item) for item in value]
        return sorted(items) if all(isinstance(item, str) for item in items) else items
    return value


def _differences(have: Any, want: Any, path: str = "") -> list[str]:
    """Where two automations' comparable data differ, as ``path: was -> now`` lines."""
    if isinstance(have, dict) and isinstance(want, dict):
        return [
            line
            for key in sorted(set(have) | set(want), key=str)
            for line in _differences(have.get(key), want.get(key), f"{path}.{key}".lstrip("."))
        ]
    return [] if have == want else [f"{path}: {have!r} -> {want!r}"]


async def ensure_automation(client: PrefectClient, desired: AutomationCore) -> UUID:
    """Create ``desired`` or bring the automation of that name to it; returns its id.

    Left untouched when it already matches (an update resets the server's trigger state).
    Duplicates of the name, left by two registrars racing, are deleted.
    """
    existing = await client.read_automations_by_name(desired.name)  # most recently updated first
    if not existing:
        return await client.create_automation(desired)
    keep, *duplicates = existing
    for duplicate in duplicates:
        await client.delete_automation(duplicate.id)  # a 404 (already gone) is fine
    have, want = _comparable(keep), _comparable(desired)
    if have != want:
        await client.update_automation(keep.id, desired)
        logger.info(
            "Updated automation %r (%s): %s",
            desired.name,
            keep.id,
            "; ".join(_differences(have, want)),
        )
    return keep.id


async def ensure_concurrency_limit(client: PrefectClient, name: str, limit: int) -> None:
    """Create the global concurrency limit ``name`` or set its limit (slots in use are kept)."""
    try:
        await client.upsert_global_concurrency_limit_by_name(name=name, limit=limit)
    except ObjectAlreadyExists:  # created by another registrar between our read and create
        await client.upsert_global_concurrency_limit_by_name(name=name, limit=limit)


async def register(
    *,
    work_pool: str,
    zombie_after: timedelta = DEFAULT_ZOMBIE_AFTER,
    link_concurrency_limit: int | None = None,
    dispatch_every: timedelta | None = None,
    standing_every: timedelta | None = None,
    silent_after: timedelta | None = None,
) -> UUID:
    """Create or update the deployment on ``work_pool`` (created as a process pool if missing).

    Also creates or updates the zombie-run automation (``zombie_after``, at least 10 s; keep
    it at 3 heartbeats or more), the :data:`ATLAS_WRITES_LIMIT` global concurrency limit
    (``link_concurrency_limit``, default ``noctis_link_concurrency_limit`` from the settings),
    the dispatcher's deployment (every ``dispatch_every``, default
    ``noctis_outbox_dispatch_seconds``), the stuck-run automation (``zombie_after``), the
    silent-run automation (``silent_after``, default the longer of ``zombie_after`` and
    :data:`DEFAULT_SILENT_AFTER`), the crash-notice automation, and the standing studies'
    deployments (:func:`register_standing`).
    """
    if zombie_after < timedelta(seconds=10):
        raise ValueError("zombie_after must be at least 10 s (Prefect's proactive minimum)")
    from noctis.settings import get_settings

    if link_concurrency_limit is None:
        link_concurrency_limit = get_settings().noctis_link_concurrency_limit
    if dispatch_every is None:
        dispatch_every = timedelta(seconds=get_settings().noctis_outbox_dispatch_seconds)
    await ensure_work_pool(work_pool)
    deployment = await imagery_finder_study.ato_deployment(
        name=DEPLOYMENT_NAME,
        version=__version__,
        description="Match the archive to an ImageryFinder, record it for a Dream, tell Augur.",
        tags=["noctis"],
        enforce_parameter_schema=True,
        entrypoint_type=EntrypointType.MODULE_PATH,
        # The heartbeat the zombie automation relies on travels with the deployment's runs.
        job_variables={"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}},
    )
    deployment_id: UUID = await deployment.aapply(work_pool_name=work_pool)
    await ensure_priority_queue(work_pool, DISPATCH_QUEUE)
    dispatcher = await outbox_dispatcher.ato_deployment(
        name=DEPLOYMENT_NAME,
        work_queue_name=DISPATCH_QUEUE,
        version=__version__,
        description="Deliver Augur's pending notifications; announce the runs that died.",
        tags=["noctis"],
        interval=dispatch_every,
        entrypoint_type=EntrypointType.MODULE_PATH,
        # One pass at a time: a pass due while another runs is cancelled, not queued, so a
        # slow or busy worker never builds a backlog of passes that crowds out the studies.
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        # Heartbeats, so that the zombie automation crashes a pass whose worker died and the
        # slot above is freed (a dead pass would otherwise cancel every later one).
        job_variables={"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}},
    )
    dispatcher_id: UUID = await dispatcher.aapply(work_pool_name=work_pool)
    standing_ids = await register_standing(work_pool=work_pool, every=standing_every)
    # The other deployments' runs too: a dispatcher pass whose worker died while starting it
    # would hold the pass-at-a-time slot for ever (found by the e2e crash test); a dead
    # standing pass or close would stay Running in the UI for ever.
    others = (dispatcher_id, *standing_ids)
    async with get_client() as client:
        await ensure_automation(
            client, zombie_automation(deployment_id, zombie_after=zombie_after, also=others)
        )
        await ensure_automation(
            client, stuck_automation(deployment_id, stuck_after=zombie_after, also=others)
        )
        await ensure_automation(
            client,
            silent_automation(
                deployment_id,
                silent_after=silent_after or max(zombie_after, DEFAULT_SILENT_AFTER),
                also=others,
            ),
        )
        await ensure_automation(client, crash_automation(deployment_id, dispatcher_id))
        await ensure_concurrency_limit(client, ATLAS_WRITES_LIMIT, link_concurrency_limit)
    return deployment_id


def loaded_trigger() -> DeploymentEventTrigger:
    """Runs the standing matcher whenever a loader says it committed scenes."""
    return DeploymentEventTrigger(
        name="noctis: match scenes a loader committed",
        expect={LOADED_EVENT},
        match={"prefect.resource.id": "*"},
        enabled=True,
    )


async def register_standing(*, work_pool: str, every: timedelta | None = None) -> tuple[UUID, UUID]:
    """Create or update ``standing-match/default`` (every ``every``, default
    ``noctis_standing_match_seconds``, and on :data:`LOADED_EVENT`) and ``close-study/default``
    on ``work_pool`` (created as a process pool if missing); returns their ids."""
    from noctis.settings import get_settings

    await ensure_work_pool(work_pool)
    matcher = await standing_match.ato_deployment(
        name=DEPLOYMENT_NAME,
        version=__version__,
        description="Match newly ingested scenes to the standing studies; tell Augur.",
        tags=["noctis"],
        interval=every or match_every(get_settings()),
        triggers=[loaded_trigger()],
        entrypoint_type=EntrypointType.MODULE_PATH,
        # Heartbeats: the zombie automation crashes a pass whose worker died (its batch rolled
        # back; its scenes are queued again for the next pass).
        job_variables={"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}},
    )
    closer = await close_study.ato_deployment(
        name=DEPLOYMENT_NAME,
        version=__version__,
        description="Close a standing study: later scenes are not matched to it.",
        tags=["noctis"],
        enforce_parameter_schema=True,
        entrypoint_type=EntrypointType.MODULE_PATH,
        job_variables={"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}},
    )
    matcher_id: UUID = await matcher.aapply(work_pool_name=work_pool)
    closer_id: UUID = await closer.aapply(work_pool_name=work_pool)
    return matcher_id, closer_id
