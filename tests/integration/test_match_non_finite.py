"""The match predicate on footprints GEOS cannot test (noctis.repositories.geo.intersects), on a
real PostGIS: a footprint with an Infinity or NaN coordinate makes ``ST_Intersects`` raise
(``orientationIndex encountered NaN/Inf numbers``) against any AOI that is not a rectangle; the
match rule decides it by its bounding box instead, and every other footprint exactly as
``ST_Intersects`` does."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
import pytest
from geoalchemy2 import WKTElement
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from noctis.db import libpq_dsn
from noctis.models import Dream, ImageryFinder
from noctis.notebook import open_uow
from noctis.plans import plan_study
from noctis.repositories.geo import finite, intersects
from noctis.settings import Settings
from noctis.study import check_study, link_study

HEXAGON = "POLYGON((10 44.3, 10.3 44, 10.7 44, 11 44.3, 10.7 44.9, 10.3 44.9, 10 44.3))"
TRIANGLE = "MULTIPOLYGON(((10 44, 10.6 44, 10.3 44.6, 10 44)))"
RECTANGLE = "POLYGON((10 44, 10.6 44, 10.6 44.6, 10 44.6, 10 44))"
FAR = "POLYGON((20 50, 21 50, 21 51, 20 51, 20 50))"


def _geom(wkt: str) -> ColumnElement[Any]:
    return func.ST_GeomFromText(wkt, 4326)


def _non_finite(value: str, *, vertex: int = 2, axis: int = 0) -> ColumnElement[Any]:
    """The quadrilateral (10.1 44.1, 10.4 44.1, 10.4 44.4, 10.1 44.4) with coordinate ``axis``
    (0: x, 1: y) of ``vertex`` set to ``value`` (the ring closes on vertex 0, so 0 sets both
    ends)."""
    ring = [[10.1, 44.1], [10.4, 44.1], [10.4, 44.4], [10.1, 44.4]]
    ring[vertex][axis] = float(value)
    ring.append(ring[0])
    points = [func.ST_MakePoint(x, y) for x, y in ring]
    return func.ST_SetSRID(func.ST_MakePolygon(func.ST_MakeLine(array(points))), 4326)


async def _value(session: AsyncSession, expr: ColumnElement[Any]) -> Any:
    return (await session.execute(select(expr))).scalar_one()


@pytest.mark.parametrize("aoi", [HEXAGON, TRIANGLE], ids=["hexagon", "multipolygon"])
@pytest.mark.parametrize("x", ["Infinity", "NaN", "-Infinity"])
async def test_st_intersects_raises_where_the_match_rule_answers(
    session: AsyncSession, aoi: str, x: str
) -> None:
    footprint = _non_finite(x)
    with pytest.raises(DBAPIError, match="NaN/Inf"):  # why the rule does not ask GEOS
        await _value(session, func.ST_Intersects(footprint, _geom(aoi)))
    await session.rollback()
    boxes_meet = await _value(session, footprint.bool_op("&&")(_geom(aoi)))
    assert await _value(session, intersects(footprint, _geom(aoi))) is boxes_meet
    assert await _value(session, intersects(footprint, _geom(FAR))) is False
    assert await _value(session, finite(footprint)) is False


@pytest.mark.parametrize(
    ("value", "vertex", "axis"),
    [
        ("NaN", 0, 0),  # the first (and closing) vertex
        ("NaN", 1, 1),  # a latitude
        ("Infinity", 3, 1),
        ("-Infinity", 0, 0),
        ("1e200", 2, 0),  # finite, but its perimeter overflows: absurd, treated the same
    ],
)
async def test_any_vertex_and_axis_is_decided_without_raising(
    session: AsyncSession, value: str, vertex: int, axis: int
) -> None:
    """Wherever the bad number sits, the rule answers (by PostGIS' box of the footprint,
    whatever NaN made of it) and never says yes to an AOI far from every finite vertex."""
    footprint = _non_finite(value, vertex=vertex, axis=axis)
    assert await _value(session, finite(footprint)) is False
    for aoi in (HEXAGON, TRIANGLE, RECTANGLE):
        boxes_meet = await _value(session, footprint.bool_op("&&")(_geom(aoi)))
        assert await _value(session, intersects(footprint, _geom(aoi))) is boxes_meet, aoi
    far = "POLYGON((-60 -40, -59 -40, -59.5 -39, -60 -40))"  # west and south of every vertex
    assert await _value(session, intersects(footprint, _geom(far))) is False


@pytest.mark.parametrize(
    ("footprint", "expected"),
    [
        ("POLYGON((10.2 44.2, 10.4 44.2, 10.4 44.4, 10.2 44.4, 10.2 44.2))", True),  # inside
        ("POLYGON((9 43, 12 43, 12 46, 9 46, 9 43))", True),  # covers the AOI
        ("POLYGON((11 44.3, 11.5 44.3, 11.5 44.6, 11 44.6, 11 44.3))", True),  # touches a vertex
        # The boxes meet, the shapes do not: only the exact predicate says no.
        ("POLYGON((10.85 44.75, 11.2 44.75, 11.2 45, 10.85 45, 10.85 44.75))", False),
        ("POLYGON((12 44, 13 44, 13 45, 12 45, 12 44))", False),  # apart
        ("POLYGON((10 44, 11 45, 11 44, 10 45, 10 44))", True),  # a bow-tie: invalid, finite
    ],
    ids=["inside", "covers", "touches", "boxes-only", "apart", "bow-tie"],
)
async def test_a_finite_footprint_is_matched_as_st_intersects_matches_it(
    session: AsyncSession, footprint: str, expected: bool
) -> None:
    for aoi in (HEXAGON, RECTANGLE):
        exact = await _value(session, func.ST_Intersects(_geom(footprint), _geom(aoi)))
        ours = await _value(session, intersects(_geom(footprint), _geom(aoi)))
        assert ours is exact, (footprint, aoi)
    assert await _value(session, intersects(_geom(footprint), _geom(HEXAGON))) is expected


async def test_a_study_inside_a_non_finite_box_links_measures_and_plans(
    atlas_settings: Settings,
) -> None:
    """The AOI lies inside the box of an Infinity footprint (``~`` holds), where the union
    coverage's shortcut asks ``ST_Covers`` of footprints whose box contains the AOI's: it must
    skip the non-finite one, and the plan must leave it out (it has no coverage)."""
    with psycopg.connect(libpq_dsn(make_url(atlas_settings.atlas_url)), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) SELECT "
            "'bad-' || n, 's2', ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY["
            "ST_MakePoint(10.1, 44.1), ST_MakePoint(10.4, 44.1), ST_MakePoint(x, 44.4), "
            "ST_MakePoint(10.1, 44.4), ST_MakePoint(10.1, 44.1)])), 4326), '2024-06-05T10:00Z' "
            "FROM (VALUES (1, 'Infinity'::float8), (2, 'NaN')) AS v(n, x)"
        )
        conn.execute(
            "INSERT INTO archive_item (external_id, collection, footprint, acquired_at) VALUES "
            "('ok', 's2', ST_GeomFromText('POLYGON((10.2 44.2, 10.3 44.2, 10.3 44.3, 10.2 44.2))',"
            " 4326), '2024-06-06T10:00Z')"
        )
    small = "POLYGON((10.15 44.25, 10.2 44.15, 10.3 44.15, 10.35 44.25, 10.3 44.35, 10.2 44.35, 10.15 44.25))"  # noqa: E501
    async with open_uow(atlas_settings) as uow:
        dream, finder = Dream(name="inside"), ImageryFinder(
            name="inside", location=WKTElement(small, srid=4326),
            start_date=date(2024, 1, 1), end_date=date(2024, 12, 31),
        )  # fmt: skip
        uow.session.add_all([dream, finder])
        await uow.session.flush()
        ids = {"finder_id": finder.id, "dream_id": dream.id}
        await uow.commit()
    async with open_uow(atlas_settings) as uow:
        study = await check_study(uow, finder_id=ids["finder_id"], dream_id=ids["dream_id"])
        linked = await link_study(uow, study)
    assert linked.total == 2  # 'ok' and the Infinity one (the NaN one's box misses the AOI)
    assert linked.coverage is not None and 0.0 < linked.coverage < 1.0
    async with open_uow(atlas_settings) as uow:
        assert await uow.lookups.suspect_count(**ids) == 1
        plan = await plan_study(uow, study)
    assert plan.summary().scenes == 1  # 'ok' alone: the non-finite one has no coverage
