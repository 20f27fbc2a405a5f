"""`noctis plan` and `noctis export --plan` on the command line, and the plan as a frame: the
plan printed and stored, bad input refused in one line with exit code 1.

Sync tests, as a shell runs the command: no event loop is running.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from noctis.cli import app
from noctis.errors import PlanError
from noctis.frames import plan_frame
from noctis.settings import Settings
from tests.support.plans import JUNE, QUARTERS, GridStudy, add_and_link, seed_linked_grid
from tests.support.studies import add_dream, add_finder, admin_dsn

runner = CliRunner()


@pytest.fixture
def grid(env: Settings) -> GridStudy:
    return asyncio.run(seed_linked_grid(env))


def _plan(finder: int, dream: int, *options: str) -> Result:
    return runner.invoke(
        app, ["plan", "--imagery-finder-pk", str(finder), "--dream-pk", str(dream), *options]
    )


def test_plan_prints_the_plan_and_its_scenes(grid: GridStudy) -> None:
    outcome = _plan(grid.finder_id, grid.dream_id)
    assert outcome.exit_code == 0, outcome.output
    assert "2024-01-01 .. 2024-12-31" in outcome.output
    for external_id in grid.clearest:
        assert external_id in outcome.output


def test_plan_json_per_month(grid: GridStudy) -> None:
    outcome = _plan(grid.finder_id, grid.dream_id, "--per", "month", "--json")
    assert outcome.exit_code == 0, outcome.output
    plan = json.loads(outcome.output)
    assert (plan["per"], plan["target"], plan["candidates"]) == ("month", 0.99, 18)
    (june,) = plan["slices"]  # every scene is of June
    assert (june["first_day"], june["last_day"], june["scenes"]) == ("2024-06-01", "2024-06-30", 4)
    assert (june["lower_bound"], june["reached"]) == (4, True)
    assert sorted(i["external_id"] for i in june["items"]) == grid.clearest
    assert [i["rank"] for i in june["items"]] == [1, 2, 3, 4]


def test_plan_per_month_says_how_far_a_month_got(grid: GridStudy, env: Settings) -> None:
    july = JUNE + timedelta(days=30)  # the two southern quarters only
    asyncio.run(add_and_link(env, grid, QUARTERS[:2], july, prefix="july"))
    outcome = _plan(grid.finder_id, grid.dream_id, "--per", "month", "--json")
    assert outcome.exit_code == 0, outcome.output
    june, july_plan = json.loads(outcome.output)["slices"]
    assert (june["scenes"], june["reached"]) == (4, True)
    assert (july_plan["first_day"], july_plan["scenes"], july_plan["reached"]) == (
        "2024-07-01",
        2,
        False,
    )
    assert july_plan["share"] == pytest.approx(0.502, abs=0.001)  # the southern half is the larger
    assert sorted(i["external_id"] for i in july_plan["items"]) == ["july-0", "july-1"]
    table = _plan(grid.finder_id, grid.dream_id, "--per", "month")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    (at,) = [i for i, line in enumerate(lines) if "2024-07-01" in line]
    row = lines[at] + lines[at + 1]  # the terminal's 80 columns wrap the last cell
    assert "50.2%" in row and "target not" in row and "reached" in lines[at + 1], table.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--target", "1.5"], "Plan failed: target must be within (0, 1], got 1.5"),
        (["--target", "0"], "Plan failed: target must be within (0, 1], got 0.0"),
        (["--per", "fortnight"], "Plan failed: Unknown slice 'fortnight': use window, month"),
        (["--cloud-weight", "1"], "Plan failed: cloud_weight must be within [0, 1), got 1.0"),
    ],
    ids=["target-above-1", "target-0", "unknown-slice", "cloud-weight-1"],
)
def test_bad_options_exit_1_with_one_line(
    grid: GridStudy, options: list[str], message: str
) -> None:
    outcome = _plan(grid.finder_id, grid.dream_id, *options)
    assert outcome.exit_code == 1
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), outcome.output


def test_an_unknown_study_exits_1(grid: GridStudy) -> None:
    outcome = _plan(999, grid.dream_id)
    assert outcome.exit_code == 1
    assert outcome.output.strip() == "Plan failed: ImageryFinder 999 does not exist"
    outcome = _plan(grid.finder_id, 999)
    assert outcome.output.strip() == "Plan failed: Dream 999 does not exist"


def test_a_point_aoi_exits_1_saying_coverage_is_undefined(env: Settings) -> None:
    async def seed() -> tuple[int, int]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(admin_dsn(env), autocommit=True) as c:
            return await add_finder(c, "POINT(10.5 45.5)"), await add_dream(c)

    finder, dream = asyncio.run(seed())
    outcome = _plan(finder, dream)
    assert outcome.exit_code == 1
    assert outcome.output.strip() == (
        f"Plan failed: ImageryFinder {finder} has a Point location: coverage is undefined for "
        "points, so there is no coverage plan (plans need a Polygon or MultiPolygon AOI)"
    )


def test_a_study_never_run_exits_1(env: Settings) -> None:
    async def seed() -> tuple[int, int]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(admin_dsn(env), autocommit=True) as c:
            wkt = "POLYGON((10 45, 11 45, 11 46, 10 46, 10 45))"
            return await add_finder(c, wkt), await add_dream(c)

    finder, dream = asyncio.run(seed())
    outcome = _plan(finder, dream)
    assert outcome.exit_code == 1
    assert "has no lookup rows with coverage: nothing to plan (run the study first" in (
        outcome.output
    )


def test_export_plan_writes_the_planned_scenes(grid: GridStudy, tmp_path: Path) -> None:
    assert _plan(grid.finder_id, grid.dream_id, "--per", "month").exit_code == 0
    output = tmp_path / "plan.geojson"
    study = ["--imagery-finder-pk", str(grid.finder_id), "--dream-pk", str(grid.dream_id)]
    export = ["export", *study, "--format", "geojson", "--output", str(output), "--plan"]
    missing = runner.invoke(app, export)  # no plan of the whole window is stored yet
    assert missing.exit_code == 1
    assert "has no stored coverage plan per window: make one first (noctis plan" in (missing.output)
    forgot = runner.invoke(app, [*export[:-1], "--per", "month"])  # no --plan
    assert forgot.exit_code == 1 and "--per 'month' slices a coverage plan: add --plan" in (
        forgot.output
    )
    outcome = runner.invoke(app, [*export, "--per", "month"])
    assert outcome.exit_code == 0, outcome.output
    assert "Wrote 4 planned scenes (per month)" in outcome.output
    features = json.loads(output.read_text())["features"]
    assert [f["properties"]["plan_rank"] for f in features] == [1, 2, 3, 4]
    assert {f["properties"]["plan_slice_start"] for f in features} == {"2024-06-01"}
    assert sorted(f["id"] for f in features) == grid.clearest


def test_the_stored_plan_as_a_frame(grid: GridStudy, env: Settings) -> None:
    assert plan_frame(grid.finder_id, grid.dream_id, settings=env).height == 0  # none stored
    assert _plan(grid.finder_id, grid.dream_id).exit_code == 0
    frame = plan_frame(grid.finder_id, grid.dream_id, settings=env)
    assert frame.get_column("plan_rank").to_list() == [1, 2, 3, 4]
    assert sorted(frame.get_column("external_id").to_list()) == grid.clearest
    covered = frame.get_column("plan_covered_m2").to_list()
    assert covered == sorted(covered)
    assert covered[-1] == pytest.approx(sum(frame.get_column("plan_gain_m2").to_list()))
    assert set(frame.columns) >= {"footprint", "coverage", "plan_slice_start", "plan_slice_end"}
    spelt = plan_frame(grid.finder_id, grid.dream_id, per=" Window ", settings=env)
    assert spelt.get_column("plan_rank").to_list() == [1, 2, 3, 4]  # as the CLI reads --per
    with pytest.raises(PlanError, match="Unknown slice 'bogus'"):
        plan_frame(grid.finder_id, grid.dream_id, per="bogus", settings=env)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "stac"])
def test_export_plan_in_every_format(grid: GridStudy, tmp_path: Path, fmt: str) -> None:
    assert _plan(grid.finder_id, grid.dream_id).exit_code == 0
    output = tmp_path / f"plan.{fmt}"
    study = ["--imagery-finder-pk", str(grid.finder_id), "--dream-pk", str(grid.dream_id)]
    outcome = runner.invoke(
        app, ["export", *study, "--format", fmt, "--output", str(output), "--plan"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "Wrote 4 planned scenes (per window)" in outcome.output
    if fmt == "stac":
        items = json.loads(output.read_text())["features"]
        assert [i["properties"]["noctis:plan_rank"] for i in items] == [1, 2, 3, 4]
