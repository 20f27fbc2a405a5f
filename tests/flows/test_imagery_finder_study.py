"""The imagery-finder-study flow end to end: Prefect, PostGIS and a loopback Augur."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from noctis import __version__
from noctis.devtools.reference import reference_match_sql
from noctis.flows.imagery_finder_study import imagery_finder_study
from noctis.models import ArchiveLookupItem, Dream, NotificationOutbox
from noctis.settings import Settings
from tests.support.augur_stub import AugurStub
from tests.support.factories import add_dream, add_finder, add_item, box
from tests.support.studies import AUGUR_TOKEN

REFERENCE = text(reference_match_sql(":finder"))


async def _seed(session: AsyncSession) -> tuple[int, int]:
    """A dream, a finder over 2024 with a 30% cloud limit, and a mixed archive."""
    dream = await add_dream(session, "Po valley floods")
    finder = await add_finder(
        session,
        box(10, 44.5, 11, 45.5),
        start=date(2024, 1, 1),
        end=date(2024, 12, 31),
        max_cloud_cover=30,
        name="Po valley",
    )
    for month in range(1, 13):
        when = datetime(2024, month, 10, 10, 0, tzinfo=UTC)
        await add_item(session, box(9.5, 44, 10.6, 45), when, cloud_cover=month * 4)
        await add_item(session, box(10.2, 45, 11.3, 46), when, cloud_cover=None)
    await add_item(session, box(20, 44, 21, 45), datetime(2024, 6, 1, tzinfo=UTC))  # elsewhere
    await add_item(session, box(10, 44, 11, 45), datetime(2023, 12, 31, 23, 59, tzinfo=UTC))
    await session.commit()
    return finder.id, dream.id


async def _linked(session: AsyncSession, finder: int, dream: int) -> list[int]:
    rows = await session.scalars(
        select(ArchiveLookupItem.archive_item_id)
        .where(
            ArchiveLookupItem.imagery_finder_id == finder,
            ArchiveLookupItem.dream_id == dream,
        )
        .order_by(ArchiveLookupItem.archive_item_id)
    )
    return list(rows)


async def _count_lookups(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(ArchiveLookupItem.id)))).scalar_one())


async def test_study_records_the_reference_matches_and_notifies_augur(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    finder, dream = await _seed(session)

    result = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=dream)

    reference = list(await session.scalars(REFERENCE, {"finder": finder}))
    assert len(reference) == 7  # January..July are under 30% cloud; unknown cover excluded
    assert await _linked(session, finder, dream) == reference
    assert (result.matched_count, result.new_count) == (7, 7)
    assert result.window == "2024-01-01 .. 2024-12-31"
    assert result.coverage == pytest.approx(0.3, abs=0.01)  # [10, 10.6] x [44.5, 45] of the AOI
    assert result.notified

    (request,) = augur_stub.requests
    assert request.method == "POST"
    assert request.path == f"/api/v1/dreams/{dream}/divinations/continue"
    assert request.json == {
        "event": "imagery-finder-study.completed",
        "dream_pk": dream,
        "imagery_finder_pk": finder,
        "flow_run_id": result.flow_run_id,
        "matched_count": 7,
        "new_count": 7,
        "coverage": result.coverage,
        "plan_scenes": 1,  # the seven matches share one footprint
        "plan_coverage": result.plan_coverage,
    }
    [key] = await session.scalars(select(NotificationOutbox.idempotency_key))
    assert re.fullmatch(rf"noctis:imagery-finder-{finder}:dream-{dream}:update-\d+:completed", key)
    assert request.header("Idempotency-Key") == key
    assert result.plan_coverage == pytest.approx(result.coverage, abs=2e-4)
    assert request.header("Authorization") == f"Bearer {AUGUR_TOKEN}"
    assert request.header("User-Agent") == f"noctis/{__version__}"


async def test_study_publishes_a_markdown_artifact(
    study_env: Settings, session: AsyncSession
) -> None:
    finder, dream = await _seed(session)
    result = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=dream)
    assert result.flow_run_id is not None
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"imagery-finder-{finder}-dream-{dream}"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(result.flow_run_id)]),
            )
        )
    assert artifacts, "no artifact with the study's key"
    markdown = str(artifacts[0].data)
    assert "| Matched items | 7 |" in markdown
    assert "Union coverage of the AOI" in markdown
    plan = r"\| Coverage plan \| 1 scene covers 30\.\d% of the AOI \(100\.0% of the matches' union"
    assert re.search(plan, markdown), markdown


async def test_rerun_adds_nothing_and_notifies_again(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    finder, dream = await _seed(session)
    first = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=dream)
    second = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=dream)
    assert (second.matched_count, second.new_count) == (7, 0)
    assert len(await _linked(session, finder, dream)) == 7
    keys = [r.header("Idempotency-Key") for r in augur_stub.requests]
    written = await session.execute(
        select(NotificationOutbox.flow_run_id, NotificationOutbox.idempotency_key).order_by(
            NotificationOutbox.id
        )
    )
    # Two runs, two updates of the study: two keys, each that of its run's outbox row.
    assert [tuple(row) for row in written] == [
        (first.flow_run_id, keys[0]),
        (second.flow_run_id, keys[1]),
    ]
    assert keys[0] != keys[1]
    assert augur_stub.requests[1].json["new_count"] == 0


async def test_no_augur_url_skips_the_notification_with_a_warning(
    study_env: Settings,
    session: AsyncSession,
    augur_stub: AugurStub,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from noctis.settings import get_settings

    monkeypatch.setenv("NOCTIS_AUGUR_API_URL", "")
    get_settings.cache_clear()
    finder, dream = await _seed(session)
    result = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=dream)
    assert result.matched_count == 7 and not result.notified
    assert augur_stub.requests == []
    assert list(await session.scalars(select(NotificationOutbox.id))) == []  # nothing to deliver
    warnings = [r for r in caplog.records if "NOCTIS_AUGUR_API_URL is empty" in r.getMessage()]
    assert len(warnings) == 1
    _ = Dream  # the dream row stays untouched


async def test_study_emits_an_event_with_the_counts_about_the_finder_and_the_dream(
    study_env: Settings, session: AsyncSession
) -> None:
    import asyncio

    from prefect.events.filters import EventFilter, EventNameFilter

    finder, dream = await _seed(session)
    result = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=dream)
    run_resource = f"prefect.flow-run.{result.flow_run_id}"
    found = None
    async with get_client() as client:
        for _ in range(50):  # events reach the server asynchronously
            page = await client.read_events(
                filter=EventFilter(event=EventNameFilter(name=["noctis.imagery-finder.studied"])),
                limit=50,  # the server's maximum (the client's default of 100 is refused)
            )
            found = next(
                (e for e in page.events if run_resource in {r.id for r in e.related}), None
            )
            if found is not None:
                break
            await asyncio.sleep(0.2)
    assert found is not None, "no noctis.imagery-finder.studied event for this run"
    assert found.resource.id == f"noctis.imagery-finder.{finder}"
    assert f"noctis.dream.{dream}" in {r.id for r in found.related}
    assert found.payload["matched_count"] == 7
    assert found.payload["new_count"] == 7
