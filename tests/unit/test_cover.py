"""Coverage plans on hand-made shapes (no database): known optima, the preference, the bound.

Shapes are lon/lat boxes near the equator, so a box's share of the AOI is its share of the
degrees (the spheroid's scale barely changes over one degree there).
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime

import numpy as np
import pytest
import shapely

from noctis.cover import Per, PlanOptions, Preference, Scenes, areas, make_plan, spheroid_area
from noctis.cover.plan import Plan
from noctis.errors import PlanError

AOI = shapely.box(10.0, 0.0, 11.0, 1.0)
JUNE = datetime(2024, 6, 15, 10, 30, tzinfo=UTC)
QUARTERS = [
    shapely.box(10.0, 0.0, 10.5, 0.5),
    shapely.box(10.5, 0.0, 11.0, 0.5),
    shapely.box(10.0, 0.5, 10.5, 1.0),
    shapely.box(10.5, 0.5, 11.0, 1.0),
]


def scenes(
    shapes: list[shapely.Geometry],
    *,
    clouds: list[float | None] | None = None,
    days: list[int] | None = None,
) -> Scenes:
    """Scenes keyed 0, 1, …; ``days`` before JUNE (default 0), clear unless ``clouds``."""
    days = days or [0] * len(shapes)
    return Scenes(
        keys=list(range(len(shapes))),
        acquired_s=[JUNE.timestamp() - d * 86_400 for d in days],
        cloud_cover=clouds or [0.0] * len(shapes),
        footprints=[shapely.to_wkb(s) for s in shapes],
    )


def plan_of(given: Scenes, aoi: shapely.Geometry = AOI, **options: object) -> Plan:
    return make_plan(given, aoi, (None, None), PlanOptions(**options))  # type: ignore[arg-type]


def taken(plan: Plan) -> list[int]:
    (only,) = plan.slices
    return [s.index for s in only.scenes]


def test_a_grid_of_tiles_is_covered_by_its_tiles_each_at_its_clearest() -> None:
    tiles = [t for t in QUARTERS for _ in range(3)]  # each tile revisited three times
    clouds: list[float | None] = [40.0, 5.0, None] * 4
    small = [shapely.box(10.1 + i / 10, 0.1, 10.15 + i / 10, 0.15) for i in range(8)]
    plan = plan_of(scenes(tiles + small, clouds=clouds + [0.0] * 8))
    assert sorted(taken(plan)) == [1, 4, 7, 10]  # the 5% revisits
    (only,) = plan.slices
    assert (only.lower_bound, only.reached) == (4, True)
    assert only.covered_m2 == pytest.approx(plan.union_m2, rel=1e-9)
    assert plan.union_m2 == pytest.approx(plan.aoi_m2, rel=1e-9)


def test_overlapping_strips_take_the_two_wide_ones() -> None:
    narrow = [shapely.box(10.0 + x, 0.0, 10.4 + x, 1.0) for x in (0.0, 0.3, 0.6)]
    wide = [shapely.box(10.0, 0.0, 10.5, 1.0), shapely.box(10.5, 0.0, 11.0, 1.0)]
    plan = plan_of(scenes(narrow + wide))
    assert sorted(taken(plan)) == [3, 4]
    assert plan.slices[0].lower_bound == 2


def test_a_cloudy_scene_covering_everything_wins_by_default_and_loses_to_a_strong_preference() -> (
    None
):
    everything = shapely.box(9.9, -0.1, 11.1, 1.1)
    given = scenes([*QUARTERS, everything], clouds=[0.0, 0.0, 0.0, 0.0, 90.0])
    # Default: weight 1 - 0.5 * 0.9 = 0.55 of the whole AOI beats 1.0 of a quarter.
    assert taken(plan_of(given)) == [4]
    # cloud_weight 0.9: 0.19 of the whole AOI loses to a clear quarter, four times.
    strong = plan_of(given, preference=Preference(cloud_weight=0.9))
    assert sorted(taken(strong)) == [0, 1, 2, 3]
    assert strong.slices[0].lower_bound == 1  # one scene could do: the cloudy one


def test_the_greedy_trap_costs_one_scene_and_the_bound_names_the_optimum() -> None:
    # Two rows cover everything; greedy takes the widest column first, then two more.
    rows = [shapely.box(10.0, 0.5, 11.0, 1.0), shapely.box(10.0, 0.0, 11.0, 0.5)]
    columns = [
        shapely.box(10.0, 0.0, 10.6, 1.0),
        shapely.box(10.6, 0.0, 10.9, 1.0),
        shapely.box(10.9, 0.0, 11.0, 1.0),
    ]
    plan = plan_of(scenes(rows + columns), target=1.0)
    assert taken(plan) == [2, 3, 4]
    assert plan.slices[0].lower_bound == 2  # the optimum


def test_a_lower_target_takes_fewer_scenes() -> None:
    plan = plan_of(scenes(QUARTERS), target=0.5)
    (only,) = plan.slices
    assert len(only.scenes) == 2 and only.reached
    assert only.covered_m2 / plan.union_m2 == pytest.approx(0.5, abs=0.01)


def test_no_scene_adding_less_than_the_minimum_is_taken() -> None:
    sliver = shapely.box(10.0, 0.0, 11.0, 0.001)  # 0.1% of the AOI, and what is left uncovered
    rest = shapely.box(10.0, 0.001, 11.0, 1.0)
    plan = plan_of(scenes([rest, sliver]), target=1.0, min_gain=0.01)
    (only,) = plan.slices
    assert taken(plan) == [0]
    assert not only.reached  # it says how far it got
    assert only.covered_m2 / plan.union_m2 == pytest.approx(0.999, abs=1e-4)


def test_of_identical_footprints_the_clearest_then_the_newest_is_taken() -> None:
    same = [AOI, AOI, AOI, AOI]
    plan = plan_of(scenes(same, clouds=[20.0, 10.0, 10.0, None], days=[0, 9, 3, 0]))
    assert taken(plan) == [2]  # 10% cloud, the newer of the two


def test_recency_breaks_a_near_tie_between_footprints() -> None:
    a, b = shapely.box(10.0, 0.0, 11.0, 1.0), shapely.box(10.0, 0.0, 11.0, 0.999)
    # b is 0.1% smaller but 300 days newer (age 0 against ~1 in its slice of a year).
    plan = plan_of(scenes([a, b], days=[300, 0]), per=Per.parse("window"), target=0.99)
    assert taken(plan) == [1]


def test_an_invalid_footprint_counts_with_its_repaired_part() -> None:
    bowtie = shapely.from_wkt("POLYGON((10 0, 11 1, 11 0, 10 1, 10 0))")
    assert not bowtie.is_valid
    plan = plan_of(scenes([bowtie]))
    (only,) = plan.slices
    assert only.covered_m2 == pytest.approx(plan.aoi_m2 / 2, rel=1e-3)


def test_footprints_and_aoi_split_at_the_antimeridian() -> None:
    east, west = shapely.box(179.0, -1.0, 180.0, 1.0), shapely.box(-180.0, -1.0, -179.0, 1.0)
    aoi = across = shapely.MultiPolygon([east, west])
    plan = plan_of(scenes([east, west, across]), aoi=aoi)
    assert taken(plan) == [2]
    assert plan.aoi_m2 == pytest.approx(2 * spheroid_area(east), rel=1e-9)


def test_areas_are_on_the_wgs84_spheroid() -> None:
    world = shapely.box(-180.0, -90.0, 180.0, 90.0)
    assert spheroid_area(world) == pytest.approx(510_065_621_724_089, rel=1e-9)
    # A 1° box on the equator (PostGIS: ST_Area(geography) 12,308,778,361 m²).
    assert spheroid_area(shapely.box(0.0, 0.0, 1.0, 1.0)) == pytest.approx(12_308_778_361, rel=2e-4)


def test_nothing_to_plan_gives_no_slice() -> None:
    plan = plan_of(scenes([]))
    assert (plan.slices, plan.union_m2) == ([], 0.0)


@pytest.mark.parametrize("target", [0.0, -0.1, 1.01, math.nan, math.inf])
def test_a_target_outside_0_1_is_refused(target: float) -> None:
    with pytest.raises(PlanError, match=r"target must be within \(0, 1\]"):
        PlanOptions(target=target)


@pytest.mark.parametrize("weight", [-0.1, 1.0, 2.0])
def test_a_preference_weight_outside_0_1_is_refused(weight: float) -> None:
    with pytest.raises(PlanError, match=r"cloud_weight must be within \[0, 1\)"):
        Preference(cloud_weight=weight)


def test_a_point_aoi_is_refused() -> None:
    with pytest.raises(PlanError, match="needs a Polygon or MultiPolygon AOI, not a Point"):
        plan_of(scenes(QUARTERS), aoi=shapely.Point(10.5, 0.5))


def test_per_month_plans_each_month_from_its_own_scenes() -> None:
    given = scenes([*QUARTERS, AOI], days=[0, 0, 0, 0, 31])  # AOI in May, quarters in June
    plan = make_plan(given, AOI, (date(2024, 4, 10), None), PlanOptions(per=Per.parse("month")))
    assert [str(s.slice) for s in plan.slices] == [
        "2024-05-01 .. 2024-05-31",
        "2024-06-01 .. 2024-06-15",
    ]
    assert [[s.index for s in p.scenes] for p in plan.slices] == [[4], [0, 1, 2, 3]]


def test_a_month_whose_scenes_cover_less_says_how_far_it_got() -> None:
    # May: the two southern quarters only; June: all four. The target is of the whole window.
    given = scenes([*QUARTERS[:2], *QUARTERS], days=[31, 31, 0, 0, 0, 0])
    plan = make_plan(given, AOI, (None, None), PlanOptions(per=Per.parse("month")))
    may, june = plan.slices
    assert (len(may.scenes), may.reached) == (2, False)
    assert plan.share(may.covered_m2) == pytest.approx(0.5, abs=0.01)
    assert may.lower_bound == 2  # each quarter adds a quarter: two at least for the half
    assert (len(june.scenes), june.reached) == (4, True)
    assert plan.share(june.covered_m2) == pytest.approx(1.0)


def test_the_plan_reaches_its_target_and_the_bound_never_passes_the_optimum() -> None:
    rng = np.random.default_rng(15)
    for _ in range(12):
        corners = rng.uniform(0.0, 1.0, size=(8, 2))
        sizes = rng.uniform(0.2, 0.7, size=(8, 2))
        shapes = [
            shapely.box(10 + x, y, 10 + min(1.0, x + w), min(1.0, y + h))
            for (x, y), (w, h) in zip(corners, sizes, strict=True)
        ]
        plan = plan_of(scenes(shapes), target=0.95, preference=Preference(0.0, 0.0))
        (only,) = plan.slices
        assert only.reached
        optimum = _fewest(shapes, 0.95 * plan.union_m2)
        assert only.lower_bound <= optimum <= len(only.scenes)
        assert len(only.scenes) <= optimum * (math.log(8) + 1)


def _fewest(shapes: list[shapely.Geometry], goal_m2: float) -> int:
    """The optimum, by brute force."""
    for k in range(1, len(shapes) + 1):
        for subset in itertools.combinations(shapes, k):
            union = shapely.intersection(shapely.union_all(list(subset)), AOI)
            if spheroid_area(union) >= goal_m2 * (1 - 1e-9):
                return k
    raise AssertionError("the goal is out of reach")


@pytest.mark.parametrize("sieve", [1, 2, 32])
def test_the_union_sieve_gives_the_union_of_every_footprint(
    sieve: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """union_area leaves out what the union of the largest footprints covers: the area must be
    that of the union of all of them. Small scenes straddle the tiles' seams (covered only by
    two tiles together), some stick out of every tile, one lies outside the AOI, one repeats a
    tile, one is empty; with SIEVE 1 and 2 the sieve takes several rounds."""
    monkeypatch.setattr(areas, "SIEVE", sieve)
    rng = np.random.default_rng(7)
    tiles = [
        shapely.box(10 + i * 0.3, j * 0.3, 10.35 + i * 0.3, 0.35 + j * 0.3)
        for i in range(3)
        for j in range(3)
    ]
    seams = [
        shapely.box(10.3 + x, 0.1 + y, 10.4 + x, 0.15 + y) for x, y in rng.random((40, 2)) * 0.5
    ]
    out = [shapely.box(10.95 + x, y, 11.2 + x, 0.02 + y) for x, y in rng.random((5, 2)) * 0.1]
    shapes = [*seams, *tiles, *out, tiles[0], shapely.box(20.0, 5.0, 20.1, 5.1), shapely.Polygon()]
    plane = areas.equal_area(np.array(shapes, dtype=object))
    aoi = areas.equal_area(AOI)[0]
    every = shapely.area(shapely.intersection(shapely.union_all(plane), aoi))
    assert areas.union_area(plane, aoi) == pytest.approx(every, rel=1e-12)
    assert areas.union_area(plane[:40], aoi) == pytest.approx(
        shapely.area(shapely.intersection(shapely.union_all(plane[:40]), aoi)), rel=1e-12
    )
    assert areas.union_area(np.array([], dtype=object), aoi) == 0.0


def test_footprints_are_projected_the_same_a_chunk_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pieces.of reads and projects the distinct footprints CHUNK at a time (memory): the
    pieces are those of one pass, across chunk boundaries, with an invalid bow-tie repaired."""
    tiles = [shapely.box(10 + i * 0.3, 45, 10.5 + i * 0.3, 45.5) for i in range(7)]
    bow_tie = shapely.Polygon([(10.1, 45.1), (10.4, 45.4), (10.4, 45.1), (10.1, 45.4)])
    wkbs = [shapely.to_wkb(g) for g in [*tiles, bow_tie, tiles[2], tiles[0]]]
    aoi = shapely.box(10.2, 45.05, 11.9, 45.45)
    whole = areas.Pieces.of(wkbs, aoi)
    monkeypatch.setattr(areas, "CHUNK", 3)
    chunked = areas.Pieces.of(wkbs, aoi)
    assert whole.group.tolist() == chunked.group.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 2, 0]
    assert shapely.equals_exact(whole.footprints, chunked.footprints, tolerance=0).all()
    assert whole.areas.tolist() == chunked.areas.tolist()
    assert shapely.is_valid(chunked.footprints).all()
