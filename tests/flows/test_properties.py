"""The whole input space at once (Hypothesis): finder geometries of every kind (valid and not,
empty, tiny, huge, antimeridian, non-finite), windows (open, inverted, far past and future,
dates Python cannot hold), filters (cloud cover outside [0, 100] and non-finite, collections
of any length and content) over an archive with bad footprints among good ones.

The invariant, for every generated case: **either** the run completes, its lookup rows are
the reference formulation's matches and each coverage is the reference's (within 1e-6, NULL
where undefined, never outside [0, 1]); **or** it fails with one Noctis error naming the finder
and the reason, writes nothing, and Augur receives that same message.

CI runs ``NOCTIS_PROPERTY_EXAMPLES`` examples (default 40); a long run by hand:
``NOCTIS_PROPERTY_EXAMPLES=2000 uv run pytest tests/flows/test_properties.py``
(docs/reliability.md records both counts).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import date

import psycopg
import pytest
import shapely
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from noctis.settings import Settings
from tests.support.augur_stub import AugurStub
from tests.support.studies import (
    add_dream,
    coverages,
    linked_ids,
    reference_ids,
    run_study,
    scalar,
    seed_grid,
)

pytestmark = pytest.mark.reliability

EXAMPLES = int(os.environ.get("NOCTIS_PROPERTY_EXAMPLES", "40"))
ANCHORS = [(10.6, 44.6), (179.8, 0.2), (-179.8, 0.2), (0.0, 0.0), (-60.0, -30.0)]
SIZES = [1e-7, 1e-3, 0.05, 0.4, 2.0, 20.0, 120.0, 190.0]
DATES = ["0044-03-15 BC", "10000-01-01", "infinity", "-infinity"]  # Python cannot hold these


@dataclass(frozen=True)
class Case:
    kind: str
    wkb: bytes
    start: date | str | None
    end: date | str | None
    cloud: float | None
    collections: list[str] | list[list[str]] | None


def _box(x: float, y: float, w: float, h: float) -> shapely.Geometry:
    return shapely.box(x - w / 2, y - h / 2, x + w / 2, y + h / 2)


@st.composite
def locations(draw: st.DrawFn) -> tuple[str, shapely.Geometry]:
    x, y = draw(st.sampled_from(ANCHORS))
    x += draw(st.floats(-0.5, 0.5))
    w, h = draw(st.sampled_from(SIZES)), draw(st.sampled_from(SIZES))
    kind = draw(
        st.sampled_from(
            ["box", "box", "box", "box", "point", "point", "multipoint", "world", "band",
             "split", "split", "unsplit", "bowtie", "empty", "line", "collection", "nonfinite",
             "outside", "multipolygon", "multipolygon"]
        )
    )  # fmt: skip
    h = min(h, 170.0)
    if kind == "box":
        geom = _box(x, y, min(w, 300.0), h)
    elif kind == "point":
        geom = shapely.Point(x, y)
    elif kind == "multipoint":
        n = draw(st.integers(1, 12))
        geom = shapely.MultiPoint([(x + i * 0.01, y - i * 0.01) for i in range(n)])
    elif kind == "world":
        geom = shapely.box(-180, -90, 180, 90)
    elif kind == "band":
        geom = shapely.box(-180, y - h / 4, 180, y + h / 4)
    elif kind == "split":
        geom = shapely.MultiPolygon(
            [
                shapely.box(180 - w / 10, y - 1, 180, y + 1),
                shapely.box(-180, y - 1, -180 + w / 10, y + 1),
            ]
        )
    elif kind == "unsplit":
        geom = shapely.Polygon([(170, y - 1), (-170, y - 1), (-170, y + 1), (170, y + 1)])
    elif kind == "bowtie":
        geom = shapely.Polygon([(x, y), (x + 1, y + 1), (x + 1, y), (x, y + 1)])
    elif kind == "empty":
        geom = shapely.Polygon()
    elif kind == "line":
        geom = shapely.LineString([(x, y), (x + 1, y + 1)])
    elif kind == "collection":
        geom = shapely.GeometryCollection([shapely.Point(x, y), _box(x, y, 0.1, 0.1)])
    elif kind == "nonfinite":
        bad = draw(st.sampled_from([math.inf, -math.inf, math.nan]))
        geom = shapely.Polygon([(x, y), (x + 1, y), (bad, y + 1), (x, y + 1)])
    elif kind == "outside":
        geom = _box(x + 181, y, 1, 1)
    else:
        geom = shapely.MultiPolygon([_box(x, y, 0.2, 0.2), _box(x + 0.5, y + 0.5, 0.2, 0.2)])
    return kind, geom


# Mostly usable values, so that most cases run all the way; the edges often enough to matter.
recent = st.dates(min_value=date(2023, 6, 1), max_value=date(2024, 12, 31))
dates = st.one_of(st.none(), st.none(), recent, recent, recent, st.dates(), st.sampled_from(DATES))


def real(low: float, high: float) -> st.SearchStrategy[float]:
    """Floats as a ``real`` (max_cloud_cover's type) holds them."""
    return st.floats(low, high, width=32, allow_subnormal=False)


clouds = st.one_of(
    st.none(),
    st.none(),
    real(0, 100),
    real(0, 100),
    real(-20, 120),
    st.sampled_from([0.0, 100.0, math.nan, math.inf, -math.inf]),
)
names = st.sampled_from(["sentinel-2-l2a", "landsat-c2-l2", "x", "", "é'\"; --"])
collection_lists = st.one_of(
    st.none(),
    st.none(),
    st.lists(names, min_size=1, max_size=6),
    st.lists(names, max_size=6),
    st.lists(st.text(st.characters(exclude_characters="\x00"), max_size=12), max_size=30),
    st.just([["sentinel-2-l2a", "x"], ["landsat-c2-l2", "y"]]),
)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind, geom = draw(locations())
    return Case(
        kind=kind,
        wkb=shapely.to_wkb(geom),
        start=draw(dates),
        end=draw(dates),
        cloud=draw(clouds),
        collections=draw(collection_lists),
    )


@pytest.fixture
async def archive(admin: psycopg.AsyncConnection) -> psycopg.AsyncConnection:
    """A mixed archive around the anchors, with bad footprints among good ones, and a database
    without the finder's CHECKs (a copy of Atlas may lack them: the flow must still hold)."""
    for x, y in ANCHORS:
        await seed_grid(admin, n=120, prefix=f"g{x}_{y}", lon=x - 1.0, lat=y - 1.0, size=0.4)
    await admin.execute(
        """
        INSERT INTO archive_item (external_id, collection, footprint, acquired_at, cloud_cover)
        SELECT 'bad-' || n, 'sentinel-2-l2a', ST_SetSRID(ST_MakePolygon(ST_MakeLine(ARRAY[
                 ST_MakePoint(10.4, 44.4), ST_MakePoint(10.9, 44.4),
                 ST_MakePoint(v, 44.9), ST_MakePoint(10.4, 44.9), ST_MakePoint(10.4, 44.4)])),
                 4326), timestamptz '2024-03-01 10:00Z' + n * interval '1 day', 5
        FROM (VALUES (1, 'Infinity'::float8), (2, 'NaN'::float8)) AS b(n, v);
        INSERT INTO archive_item (external_id, collection, footprint, acquired_at, cloud_cover)
        VALUES ('bowtie', 'landsat-c2-l2',
                ST_GeomFromText('POLYGON((10 44, 11 45, 11 44, 10 45, 10 44))', 4326),
                '2024-04-01T10:00Z', 20),
               ('split', 'sentinel-2-l2a', ST_GeomFromText('MULTIPOLYGON(((179 -1, 180 -1,
                180 1, 179 1, 179 -1)), ((-180 -1, -179 -1, -179 1, -180 1, -180 -1)))', 4326),
                '2024-05-01T10:00Z', NULL);
        """
    )
    for check in ("start_before_end", "max_cloud_cover_range"):
        await admin.execute(f"ALTER TABLE imagery_finder DROP CONSTRAINT ck_imagery_finder_{check}")
    await admin.execute("ANALYZE archive_item")
    return admin


async def _insert(conn: psycopg.AsyncConnection, case: Case) -> int:
    value = int(
        await scalar(
            conn,
            "INSERT INTO imagery_finder (name, location, start_date, end_date, max_cloud_cover)"
            " VALUES (%s, ST_SetSRID(ST_GeomFromWKB(%s), 4326), %s::date, %s::date, %s)"
            " RETURNING id",
            (case.kind, case.wkb, _date(case.start), _date(case.end), case.cloud),
        )
    )
    if case.collections is not None:
        await conn.execute(
            "UPDATE imagery_finder SET collections = %s::text[] WHERE id = %s",
            (case.collections, value),
        )
    return value


def _date(value: date | str | None) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
async def test_every_finder_is_matched_right_or_refused_cleanly(
    study_env: Settings, archive: psycopg.AsyncConnection, augur_stub: AugurStub, case: Case
) -> None:
    augur_stub.reset()
    dream = await add_dream(archive)
    finder = await _insert(archive, case)
    state = await run_study(finder, dream)
    notes = [r.json for r in augur_stub.requests]
    event(f"{case.kind}: {'completed' if state.is_completed() else 'refused'}")
    if state.is_completed():
        result = await state.aresult()
        expected = await reference_ids(archive, finder)
        assert await linked_ids(archive, finder, dream) == expected, case
        assert (result.matched_count, result.new_count) == (len(expected), len(expected))
        for item, recorded, reference in await coverages(archive, finder, dream):
            if reference is None:
                assert recorded is None, (case, item)
            else:
                assert recorded is not None and 0.0 <= recorded <= 1.0, (case, item, recorded)
                assert abs(recorded - reference) <= 1e-6, (case, item, recorded, reference)
        assert [n["event"] for n in notes] == ["imagery-finder-study.completed"]
    else:
        message = state.message or ""
        assert f"ImageryFinder {finder} " in message, (case, message)
        assert "Traceback" not in message
        assert await linked_ids(archive, finder, dream) == [], case
        (note,) = notes
        assert note["event"] == "imagery-finder-study.failed"
        assert note["error"] in message, (case, note["error"], message)
        assert note["error"].startswith(f"ImageryFinder {finder} "), note["error"]
