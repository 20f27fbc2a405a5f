"""A scene whose footprint has a non-finite coordinate, under an AOI that is not a rectangle.

GEOS raises on such a footprint for every AOI it cannot decide from the boxes
(``orientationIndex encountered NaN/Inf numbers``), so before the match rule decided these
footprints by their bounding box, one bad scene failed every study of a hexagon, a triangle or a
country over it (tests/integration/test_match_non_finite.py). The study now completes: the scene
matches by its box, has no coverage and is counted as suspect."""

from __future__ import annotations

import psycopg
import pytest

from noctis.settings import Settings
from tests.support.augur_stub import AugurStub
from tests.support.studies import (
    add_dream,
    add_finder,
    linked_ids,
    reference_ids,
    run_study,
    scalar,
    seed_grid,
)

pytestmark = pytest.mark.reliability

HEXAGON = "POLYGON((10 44.3, 10.3 44, 10.7 44, 11 44.3, 10.7 44.9, 10.3 44.9, 10 44.3))"


async def test_a_study_over_non_finite_footprints_completes_and_counts_them(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    await seed_grid(admin, n=40, lon=10.0, lat=44.0)
    await admin.execute(
        "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) SELECT "
        "'bad-' || x, 's2', ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY[ST_MakePoint(10.1, 44.1),"
        " ST_MakePoint(10.4, 44.1), ST_MakePoint(x, 44.4), ST_MakePoint(10.1, 44.4), "
        "ST_MakePoint(10.1, 44.1)])), 4326), '2024-01-02T10:00Z' "
        "FROM unnest(ARRAY['Infinity', 'NaN']::float8[]) AS x"
    )
    dream = await add_dream(admin)
    finder = await add_finder(admin, HEXAGON)
    state = await run_study(finder, dream)
    assert state.is_completed(), state.message
    result = await state.aresult()
    linked = await linked_ids(admin, finder, dream)
    assert linked == await reference_ids(admin, finder)
    bad = await scalar(
        admin,
        "SELECT count(*) FILTER (WHERE l.coverage IS NULL) || '/' || count(*) "
        "FROM archive_lookup_item l JOIN archive_item a ON a.id = l.archive_item_id "
        "WHERE a.external_id LIKE 'bad-%%'",
    )
    assert bad == "2/2"  # both matched (their boxes meet the hexagon's), neither has a coverage
    assert result.suspect_count == 2
    assert len(linked) > 2 and 0.0 < result.coverage <= 1.0
    (note,) = [r.json for r in augur_stub.requests]
    assert note["event"] == "imagery-finder-study.completed"
