"""The imagery-finder-study flow end to end: Prefect, PostGIS and a loopback Augur."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
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
from noctis.flows.imagery_finder_study import imagery_finder_study
from noctis.models import ArchiveLookupItem, Dream
from noctis.settings import Settings
from tests.factories import add_dream, add_finder, add_item, box, square
from tests.support.augur_stub import AugurStub, Reply

REFERENCE = text(
    """
    SELECT a.id FROM archive_item a, imagery_finder f
    WHERE f.id = :finder
      AND ST_Intersects(a.footprint, f.location)
      AND (f.start_date IS NULL OR a.acquired_at >= f.start_date::timestamp AT TIME ZONE 'UTC')
      AND (f.end_date IS NULL
           OR a.acquired_at < (f.end_date + 1)::timestamp AT TIME ZONE 'UTC')
      AND (f.max_cloud_cover IS NULL OR a.cloud_cover <= f.max_cloud_cover)
      AND (f.collections IS NULL OR a.collection = ANY (f.collections))
    ORDER BY a.id
    """
)


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
    }
    assert request.header("Idempotency-Key") == f"noctis:{result.flow_run_id}:completed"
    assert request.header("Authorization") == "Bearer augur-token-for-tests"
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


async def test_rerun_adds_nothing_and_notifies_again(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    finder, dream = await _seed(session)
    first = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=dream)
    second = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=dream)
    assert (second.matched_count, second.new_count) == (7, 0)
    assert len(await _linked(session, finder, dream)) == 7
    keys = [r.header("Idempotency-Key") for r in augur_stub.requests]
    assert keys == [
        f"noctis:{first.flow_run_id}:completed",
        f"noctis:{second.flow_run_id}:completed",
    ]
    assert augur_stub.requests[1].json["new_count"] == 0


async def test_augur_500_then_200_is_retried_with_the_same_key(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    finder, dream = await _seed(session)
    augur_stub.script([500, Reply(503), 200])
    result = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=dream)
    assert len(await _linked(session, finder, dream)) == 7
    keys = {r.header("Idempotency-Key") for r in augur_stub.requests}
    assert len(augur_stub.requests) == 3
    assert keys == {f"noctis:{result.flow_run_id}:completed"}


async def test_augur_400_fails_the_run_with_its_message_and_keeps_the_matches(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    finder, dream = await _seed(session)
    augur_stub.script([Reply(400, json={"detail": f"dream {dream} is archived"})])
    state = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=dream, return_state=True)
    assert state.is_failed()
    assert f"dream {dream} is archived" in (state.message or "")
    assert "HTTP 400" in (state.message or "")
    assert len(augur_stub.requests) == 1  # a 4xx is not retried
    assert len(await _linked(session, finder, dream)) == 7


async def test_unknown_finder_fails_writes_nothing_and_notifies_no_one(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    _, dream = await _seed(session)
    state = await imagery_finder_study(imagery_finder_pk=424242, dream_pk=dream, return_state=True)
    assert state.is_failed()
    assert "ImageryFinder 424242 does not exist" in (state.message or "")
    assert await _count_lookups(session) == 0
    assert augur_stub.requests == []


async def test_unknown_dream_fails_and_tells_augur(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    finder, _ = await _seed(session)
    state = await imagery_finder_study(imagery_finder_pk=finder, dream_pk=777, return_state=True)
    assert state.is_failed()
    assert "Dream 777 does not exist" in (state.message or "")
    assert await _count_lookups(session) == 0
    (request,) = augur_stub.requests
    assert request.json["event"] == "imagery-finder-study.failed"
    assert request.json["error"] == "Dream 777 does not exist"


BAD_LOCATIONS = [
    ("POLYGON EMPTY", "has an empty location"),
    ("POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))", "has an invalid location: Self-intersection"),
    ("LINESTRING(0 0, 1 1)", "has a LineString location"),
    ("GEOMETRYCOLLECTION(POINT(0 0), LINESTRING(0 0, 1 1))", "has a GeometryCollection location"),
    ("POLYGON((170 0, 190 0, 190 1, 170 1, 170 0))", "has a location outside [-180, 180]"),
]


@pytest.mark.parametrize(("wkt", "reason"), BAD_LOCATIONS)
async def test_bad_locations_fail_with_the_reason_before_anything_is_written(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub, wkt: str, reason: str
) -> None:
    dream = await add_dream(session)
    finder = await add_finder(session, wkt)
    await add_item(session, square(0.5, 0.5, 0.5))
    await session.commit()
    state = await imagery_finder_study(
        imagery_finder_pk=finder.id, dream_pk=dream.id, return_state=True
    )
    assert state.is_failed()
    assert f"ImageryFinder {finder.id} {reason}" in (state.message or "")
    assert await _count_lookups(session) == 0
    (request,) = augur_stub.requests
    assert request.json["event"] == "imagery-finder-study.failed"
    assert reason in request.json["error"]


async def test_start_after_end_is_refused(
    study_env: Settings, session: AsyncSession, augur_stub: AugurStub
) -> None:
    # The schema forbids it; a database without the constraint must still be caught.
    await session.execute(
        text("ALTER TABLE imagery_finder DROP CONSTRAINT ck_imagery_finder_start_before_end")
    )
    dream = await add_dream(session)
    finder = await add_finder(
        session, square(0, 0, 1), start=date(2024, 5, 2), end=date(2024, 5, 1)
    )
    await session.commit()
    state = await imagery_finder_study(
        imagery_finder_pk=finder.id, dream_pk=dream.id, return_state=True
    )
    assert state.is_failed()
    assert f"ImageryFinder {finder.id} starts after it ends" in (state.message or "")
    assert await _count_lookups(session) == 0


@pytest.mark.parametrize("bad", [0, -3, "seven"])
async def test_bad_parameters_are_refused(
    study_env: Settings, session: AsyncSession, bad: Any
) -> None:
    dream = await add_dream(session)
    await session.commit()
    state = await imagery_finder_study(imagery_finder_pk=bad, dream_pk=dream.id, return_state=True)
    assert state.is_failed()
    assert "imagery_finder_pk" in (state.message or "")
    assert await _count_lookups(session) == 0


def test_deployment_schema_refuses_non_positive_pks_at_trigger_time() -> None:
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(imagery_finder_study.fn).model_dump_for_openapi()
    for name in ("imagery_finder_pk", "dream_pk"):
        assert schema["properties"][name]["type"] == "integer"
        assert schema["properties"][name]["exclusiveMinimum"] == 0
    assert set(schema["required"]) == {"imagery_finder_pk", "dream_pk"}


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
