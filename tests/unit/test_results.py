"""How a study's result reads: one share format, the same rows in the artifact and the terminal."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from rich.console import Console

from noctis.console import items_table, result_table
from noctis.repositories import StudyItem
from noctis.results import StudyResult, render_markdown, share

RESULT = StudyResult(
    imagery_finder_pk=2,
    dream_pk=1,
    finder_name="Po valley",
    dream_name="floods",
    location_type="Polygon",
    start_date=date(2024, 1, 1),
    end_date=date(2024, 12, 31),
    window="2024-01-01 .. 2024-12-31",
    matched_count=156,
    new_count=12,
    coverage=0.4681,
    flow_run_id="5f0c",
    notified=True,
)
ITEM = StudyItem(
    external_id="S2A_1",
    collection="sentinel-2-l2a",
    acquired_at=datetime(2024, 6, 1, 10, 30, tzinfo=UTC),
    cloud_cover=None,
    coverage=0.25,
)


def _text(renderable: object) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


def test_a_share_reads_the_same_everywhere() -> None:
    assert share(0.4681) == "46.8%"
    assert share(1.0) == "100.0%"
    assert share(None) == "n/a (point AOI)"


def test_the_artifact_and_the_terminal_show_the_same_figures() -> None:
    markdown = render_markdown(RESULT, [ITEM])
    terminal = _text(result_table(RESULT)) + _text(items_table([ITEM]))
    for figure in ("156", "12", "46.8%", "2024-01-01 .. 2024-12-31", "S2A_1", "25.0%", "?"):
        assert figure in markdown, figure
        assert figure in terminal, figure
    assert "| Union coverage of the AOI | 46.8% |" in markdown


def test_the_terminal_says_whether_augur_acknowledged() -> None:
    assert re.search(r"Augur notified\s*│\s*yes", _text(result_table(RESULT)))
    silent = RESULT.model_copy(update={"notified": False})
    assert "no (NOCTIS_AUGUR_API_URL is empty)" in _text(result_table(silent))


def test_an_empty_study_says_so() -> None:
    assert "No archive item matched." in render_markdown(RESULT, [])


def test_the_coverage_plan_reads_in_one_line() -> None:
    from noctis.results import plan_text

    assert plan_text(RESULT) == "n/a (point AOI)"
    empty = RESULT.model_copy(update={"plan_scenes": 0, "plan_coverage": 0.0})
    assert plan_text(empty) == "no scene (nothing matched covers the AOI)"
    planned = RESULT.model_copy(
        update={
            "plan_scenes": 12,
            "plan_coverage": 0.4634,
            "plan_share": 0.99,
            "plan_lower_bound": 7,
        }
    )
    assert plan_text(planned) == (
        "12 scenes cover 46.3% of the AOI (99.0% of the matches' union; at least 7 needed)"
    )
    assert "| Coverage plan | 12 scenes cover 46.3%" in render_markdown(planned, [])
