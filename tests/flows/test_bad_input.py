"""Bad input: each case a clear error naming the object and the reason, nothing written, and a
``failed`` notification wherever a study (a finder) exists; and the edge cases that must work.

Where the schema already refuses a value (NOT NULL, CHECK, the geometry column's SRID and
dimensions), the test shows the refusal, then drops the constraint, as a database that lacks
it would, and shows that the flow refuses it too.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import psycopg
import pytest

from noctis.settings import Settings
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
)

pytestmark = pytest.mark.reliability


WORLD = "POLYGON((-180 -90, 180 -90, 180 90, -180 90, -180 -90))"
WGS84_AREA_M2 = 510_065_621_724_088  # the WGS 84 ellipsoid's surface


async def _refused(
    state: Any,
    reason: str,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    *,
    notified: bool = True,
) -> None:
    """Failed with ``reason`` in its message, nothing written, Augur told (or not)."""
    assert state.is_failed(), state
    assert reason in (state.message or ""), state.message
    assert await lookup_count(admin) == 0
    if notified:
        (note,) = [r.json for r in augur_stub.requests]
        assert note["event"] == "imagery-finder-study.failed"
        assert reason in note["error"]
        assert note["flow_run_id"] == str(state.state_details.flow_run_id)
    else:
        assert augur_stub.requests == []


async def _with_items(admin: psycopg.AsyncConnection) -> int:
    """An archive around (0, 0) and (10, 44) and a dream; returns the dream."""
    await seed_grid(admin, n=100, prefix="eq", lon=-1.0, lat=-1.0)
    await seed_grid(admin, n=100, prefix="po", lon=10.0, lat=44.0)
    return await add_dream(admin)


# ----------------------------------------------------------------------------- unknown objects


async def test_unknown_finder(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await _with_items(admin)
    state = await run_study(987654, dream)
    # No finder, no study to report on: Augur is not told (it triggered a finder it lacks).
    await _refused(state, "ImageryFinder 987654 does not exist", admin, augur_stub, notified=False)


async def test_unknown_dream(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    await _with_items(admin)
    finder = await add_finder(admin, square(0, 0, 1))
    state = await run_study(finder, 424242)
    await _refused(state, "Dream 424242 does not exist", admin, augur_stub)


# ----------------------------------------------------------------------------- locations

BAD_LOCATIONS = [
    pytest.param("POLYGON EMPTY", "has an empty location", id="empty"),
    pytest.param("POINT EMPTY", "has an empty location", id="empty-point"),
    pytest.param(
        "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))",
        "has an invalid location: Self-intersection[0.5 0.5]",
        id="bow-tie",
    ),
    pytest.param(
        "MULTIPOLYGON(((0 0,1 0,1 1,0 1,0 0)),((0.5 0.5,2 0.5,2 2,0.5 2,0.5 0.5)))",
        "has an invalid location: Self-intersection",
        id="overlapping-multipolygon",
    ),
    pytest.param(
        "POINT(NaN 0)", "has an invalid location: Invalid Coordinate", id="nan-coordinate"
    ),
    pytest.param(
        "LINESTRING(0 0, 1 1)",
        "has a LineString location: it must be a Point, MultiPoint, Polygon or MultiPolygon",
        id="line",
    ),
    pytest.param("MULTILINESTRING((0 0, 1 1))", "has a MultiLineString location", id="lines"),
    pytest.param(
        "GEOMETRYCOLLECTION(POINT(0 0), POLYGON((0 0, 1 0, 1 1, 0 0)))",
        "has a GeometryCollection location",
        id="collection",
    ),
    pytest.param(
        "POLYGON((170 0, 190 0, 190 1, 170 1, 170 0))",
        "has a location outside [-180, 180] x [-90, 90]",
        id="beyond-180",
    ),
    pytest.param(
        "POINT(10 95)", "has a location outside [-180, 180] x [-90, 90]", id="beyond-pole"
    ),
    pytest.param(
        "POLYGON((170 -10, -170 -10, -170 10, 170 10, 170 -10))",
        "has an edge from longitude 170 to -170 (340° wide): a location that crosses the "
        "antimeridian must be split into a MultiPolygon at ±180",
        id="antimeridian-unsplit",
    ),
]


@pytest.mark.parametrize(("wkt", "reason"), BAD_LOCATIONS)
async def test_bad_location(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    wkt: str,
    reason: str,
) -> None:
    dream = await _with_items(admin)
    finder = await add_finder(admin, wkt)
    state = await run_study(finder, dream)
    await _refused(state, f"ImageryFinder {finder} {reason}", admin, augur_stub)


async def test_null_location_is_refused_by_the_schema_and_by_the_flow(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await _with_items(admin)
    with pytest.raises(psycopg.errors.NotNullViolation, match='"location"'):
        await admin.execute("INSERT INTO imagery_finder (name, location) VALUES ('x', NULL)")
    await admin.execute("ALTER TABLE imagery_finder ALTER COLUMN location DROP NOT NULL")
    finder = int(
        await scalar(admin, "INSERT INTO imagery_finder (location) VALUES (NULL) RETURNING id")
    )
    state = await run_study(finder, dream)
    await _refused(state, f"ImageryFinder {finder} has no location", admin, augur_stub)


@pytest.mark.parametrize(
    ("ewkt", "error"),
    [
        pytest.param("SRID=3857;POINT(0 0)", "Geometry SRID (3857) does not match", id="srid"),
        pytest.param("SRID=4326;POINT Z (0 0 5)", "Geometry has Z dimension", id="3d"),
    ],
)
async def test_the_location_column_refuses_other_srids_and_dimensions(
    admin: psycopg.AsyncConnection, ewkt: str, error: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=re.escape(error)):
        await admin.execute(
            "INSERT INTO imagery_finder (location) VALUES (ST_GeomFromEWKT(%s))", (ewkt,)
        )


# ----------------------------------------------------------------------------- dates and filters


async def test_start_after_end_is_refused_by_the_schema_and_by_the_flow(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await _with_items(admin)
    with pytest.raises(psycopg.errors.CheckViolation, match="start_before_end"):
        await add_finder(admin, square(0, 0, 1), start="2024-05-02", end="2024-05-01")
    await admin.execute(
        "ALTER TABLE imagery_finder DROP CONSTRAINT ck_imagery_finder_start_before_end"
    )
    finder = await add_finder(admin, square(0, 0, 1), start="2024-05-02", end="2024-05-01")
    state = await run_study(finder, dream)
    reason = f"ImageryFinder {finder} starts after it ends (2024-05-02 > 2024-05-01)"
    await _refused(state, reason, admin, augur_stub)


async def test_empty_collections_are_refused(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await _with_items(admin)
    finder = await add_finder(admin, square(0, 0, 1), collections=[])
    state = await run_study(finder, dream)
    reason = f"ImageryFinder {finder} has an empty collections list"
    await _refused(state, reason, admin, augur_stub)


@pytest.mark.parametrize("cloud", [150.0, -1.0, math.nan])
async def test_max_cloud_cover_out_of_range_is_refused_by_the_schema_and_by_the_flow(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    cloud: float,
) -> None:
    dream = await _with_items(admin)
    with pytest.raises(psycopg.errors.CheckViolation, match="max_cloud_cover_range"):
        await add_finder(admin, square(0, 0, 1), max_cloud_cover=cloud)
    await admin.execute(
        "ALTER TABLE imagery_finder DROP CONSTRAINT ck_imagery_finder_max_cloud_cover_range"
    )
    finder = await add_finder(admin, square(0, 0, 1), max_cloud_cover=cloud)
    state = await run_study(finder, dream)
    reason = (
        f"ImageryFinder {finder} has a max_cloud_cover of {cloud:g}: it must be within [0, 100]"
    )
    await _refused(state, reason, admin, augur_stub)


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("finder_pk", "error"),
    [
        pytest.param(0, "Input should be greater than 0", id="zero"),
        pytest.param(-3, "Input should be greater than 0", id="negative"),
        pytest.param("seven", "Input should be a valid integer", id="string"),
        pytest.param(1.5, "Input should be a valid integer", id="fraction"),
        pytest.param(True, "Input should be a valid integer, not a boolean", id="bool"),
        pytest.param(None, "Input should be a valid integer", id="none"),
        pytest.param(2**63, "Input should be less than or equal to 9223372036854775807", id="big"),
    ],
)
async def test_bad_pk_is_refused_before_any_task_runs(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    finder_pk: Any,
    error: str,
) -> None:
    dream = await _with_items(admin)
    state = await run_study(finder_pk, dream)
    assert state.is_failed()
    message = state.message or ""
    assert "imagery_finder_pk" in message and error in message, message
    assert await lookup_count(admin) == 0
    assert augur_stub.requests == []  # no run started: nothing to report


async def test_missing_pk_is_refused(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    from noctis.flows.imagery_finder_study import imagery_finder_study

    dream = await _with_items(admin)
    with pytest.raises(TypeError, match="imagery_finder_pk"):
        await imagery_finder_study(dream_pk=dream, return_state=True)
    assert await lookup_count(admin) == 0
    assert augur_stub.requests == []


def test_the_deployment_schema_refuses_bad_pks_at_trigger_time() -> None:
    from prefect.utilities.callables import parameter_schema

    from noctis.flows.imagery_finder_study import imagery_finder_study

    schema = parameter_schema(imagery_finder_study.fn).model_dump_for_openapi()
    assert set(schema["required"]) == {"imagery_finder_pk", "dream_pk"}
    for name in ("imagery_finder_pk", "dream_pk"):
        prop = schema["properties"][name]
        assert prop["type"] == "integer"
        assert prop["exclusiveMinimum"] == 0
        assert prop["maximum"] == 2**63 - 1  # bigint


# ----------------------------------------------------------------------------- must work


async def _completed(state: Any, admin: psycopg.AsyncConnection, finder: int, dream: int) -> Any:
    assert state.is_completed(), state.message
    result = await state.aresult()
    expected = await reference_ids(admin, finder)
    assert await linked_ids(admin, finder, dream) == expected
    assert (result.matched_count, result.new_count) == (len(expected), len(expected))
    return result


async def test_whole_world_aoi_works_quickly_with_sane_coverage(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await _with_items(admin)
    finder = await add_finder(admin, WORLD)
    started = time.monotonic()
    state = await run_study(finder, dream)
    elapsed = time.monotonic() - started
    result = await _completed(state, admin, finder, dream)
    assert result.matched_count == 200  # every item
    assert elapsed < 10, elapsed
    # Coverage: the items' share of the whole Earth, tiny but positive, and per item too.
    covered = float(
        await scalar(
            admin,
            "SELECT ST_Area(ST_Transform(ST_Segmentize(ST_Union(footprint), 0.25), 6933))"
            " FROM archive_item",
        )
    )
    assert result.coverage == pytest.approx(covered / WGS84_AREA_M2, rel=1e-3)
    per_item = await scalar(
        admin,
        "SELECT max(abs(l.coverage"
        " - ST_Area(ST_Transform(ST_Segmentize(a.footprint, 0.25), 6933)) / %s)) "
        "FROM archive_lookup_item l JOIN archive_item a ON a.id = l.archive_item_id",
        (WGS84_AREA_M2,),
    )
    assert per_item < 1e-9
    (note,) = [r.json for r in augur_stub.requests]
    assert note["event"] == "imagery-finder-study.completed"


@pytest.mark.parametrize(
    ("wkt", "area_m2"),
    [
        pytest.param(
            "POLYGON((-180 -10, 180 -10, 180 10, -180 10, -180 -10))", 88.188e12, id="band"
        ),
        pytest.param("POLYGON((-180 60, 180 60, 180 90, -180 90, -180 60))", 34.416e12, id="cap"),
        pytest.param(
            "POLYGON((-100 -5, 0 -5, 100 -5, 100 5, 0 5, -100 5, -100 -5))", 24.6e12, id="200deg"
        ),
    ],
)
async def test_aois_wider_than_180_degrees_work(
    study_env: Settings,
    admin: psycopg.AsyncConnection,
    augur_stub: AugurStub,
    wkt: str,
    area_m2: float,
) -> None:
    dream = await _with_items(admin)
    finder = await add_finder(admin, wkt)
    result = await _completed(await run_study(finder, dream), admin, finder, dream)
    assert result.coverage is not None and 0 <= result.coverage <= 1
    from noctis.runtime import open_runtime

    async with open_runtime(study_env) as runtime, runtime.unit_of_work() as uow:
        report = await uow.finders.describe(finder)
    assert report.area_m2 == pytest.approx(area_m2, rel=2e-3)


async def test_an_antimeridian_aoi_split_at_180_matches_both_sides(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await add_dream(admin)
    await seed_grid(admin, n=40, prefix="east", lon=177.0, lat=-1.0)  # up to 179.2
    await seed_grid(admin, n=40, prefix="west", lon=-180.0, lat=-1.0)
    finder = await add_finder(
        admin,
        "MULTIPOLYGON(((170 -10, 180 -10, 180 10, 170 10, 170 -10)),"
        "((-180 -10, -170 -10, -170 10, -180 10, -180 -10)))",
    )
    result = await _completed(await run_study(finder, dream), admin, finder, dream)
    assert result.matched_count == 80


async def test_an_invalid_footprint_in_the_archive_does_not_break_the_study(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await _with_items(admin)
    # The CHECK only enforces the type: a bow-tie footprint gets in.
    await admin.execute(
        "INSERT INTO archive_item (external_id, collection, footprint, acquired_at)"
        " VALUES ('bow-tie', 'sentinel-2-l2a',"
        " ST_GeomFromText('POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))', 4326), '2024-06-01')"
    )
    finder = await add_finder(admin, box(0.2, 0.2, 0.8, 0.8))
    result = await _completed(await run_study(finder, dream), admin, finder, dream)
    bad = await scalar(
        admin,
        "SELECT l.coverage FROM archive_lookup_item l JOIN archive_item a"
        " ON a.id = l.archive_item_id WHERE a.external_id = 'bow-tie'",
    )
    # Coverage of the repaired footprint (two triangles meeting at the centre): about 0.5.
    assert bad == pytest.approx(0.5, abs=0.01)
    assert result.coverage == pytest.approx(0.5, abs=0.01)  # the only item here


async def test_multipoint(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await _with_items(admin)
    finder = await add_finder(admin, "MULTIPOINT((0 0), (10.5 44.5), (50 50))")
    result = await _completed(await run_study(finder, dream), admin, finder, dream)
    assert result.matched_count > 0 and result.coverage is None


async def test_a_point_exactly_on_a_footprint_edge_matches(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await add_dream(admin)
    await admin.execute(
        "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) VALUES"
        " ('edge', 's2', ST_MakeEnvelope(0, 0, 1, 1, 4326), '2024-06-01'),"
        " ('apart', 's2', ST_MakeEnvelope(1.000001, 0, 2, 1, 4326), '2024-06-01')"
    )
    finder = await add_finder(admin, "POINT(1 0.5)")
    result = await _completed(await run_study(finder, dream), admin, finder, dream)
    assert result.matched_count == 1 and result.coverage is None


async def test_a_tiny_polygon(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await _with_items(admin)
    finder = await add_finder(admin, square(-0.4, -0.8, 1e-7))  # about 2 cm across
    result = await _completed(await run_study(finder, dream), admin, finder, dream)
    assert result.matched_count > 0
    assert result.coverage == pytest.approx(1.0)


async def test_a_finder_far_from_every_item_completes_with_nothing(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:
    dream = await _with_items(admin)
    finder = await add_finder(admin, square(-120, -60, 1))
    result = await _completed(await run_study(finder, dream), admin, finder, dream)
    assert (result.matched_count, result.new_count, result.coverage) == (0, 0, 0.0)
    (note,) = [r.json for r in augur_stub.requests]
    assert note["event"] == "imagery-finder-study.completed"
    assert (note["matched_count"], note["coverage"]) == (0, 0.0)


async def test_open_and_far_dates(
    study_env: Settings, admin: psycopg.AsyncConnection, augur_stub: AugurStub
) -> None:

    dream = await _with_items(admin)
    finder = await add_finder(admin, square(0, 0, 2), start="0001-01-01", end="9999-12-31")
    result = await _completed(await run_study(finder, dream), admin, finder, dream)
    assert result.matched_count > 0 and result.window == "0001-01-01 .. 9999-12-31"
