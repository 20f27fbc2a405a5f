"""Time slices: --per month | quarter | year | N days (no database)."""

from __future__ import annotations

from datetime import date

import pytest

from noctis.cover import Per, Slice
from noctis.errors import PlanError


def days(slices: list[Slice]) -> list[str]:
    return [str(s) for s in slices]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("window", Per("window")),
        ("month", Per("month")),
        (" Quarter ", Per("quarter")),
        ("year", Per("year")),
        ("10 days", Per("days", 10)),
        ("1 day", Per("days", 1)),
        ("7days", Per("days", 7)),
    ],
)
def test_per_reads_its_names(text: str, expected: Per) -> None:
    assert Per.parse(text) == expected
    assert Per.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["fortnight", "0 days", "-3 days", "days", "2 weeks", ""])
def test_an_unknown_slice_is_refused_with_the_choices(text: str) -> None:
    with pytest.raises(PlanError, match=r"Unknown slice .*: use window, month, quarter, year"):
        Per.parse(text)


def test_months_are_calendar_months_clipped_to_the_window() -> None:
    slices = Per.parse("month").slices(
        date(2024, 1, 15), date(2024, 4, 10), scenes=(date(2024, 1, 20), date(2024, 4, 1))
    )
    assert days(slices) == [
        "2024-01-15 .. 2024-01-31",
        "2024-02-01 .. 2024-02-29",
        "2024-03-01 .. 2024-03-31",
        "2024-04-01 .. 2024-04-10",
    ]


def test_slices_run_from_the_first_scene_to_the_last_gaps_included() -> None:
    slices = Per.parse("quarter").slices(
        date(2020, 1, 1), date(2024, 12, 31), scenes=(date(2021, 5, 3), date(2022, 1, 2))
    )
    assert days(slices) == [
        "2021-04-01 .. 2021-06-30",
        "2021-07-01 .. 2021-09-30",  # no scene need be in it: a gap is listed
        "2021-10-01 .. 2021-12-31",
        "2022-01-01 .. 2022-03-31",
    ]


def test_years_and_the_window() -> None:
    window = (date(2019, 6, 1), date(2021, 2, 1))
    scenes = (date(2019, 6, 1), date(2021, 2, 1))
    assert days(Per.parse("year").slices(*window, scenes=scenes)) == [
        "2019-06-01 .. 2019-12-31",
        "2020-01-01 .. 2020-12-31",
        "2021-01-01 .. 2021-02-01",
    ]
    assert days(Per().slices(*window, scenes=scenes)) == ["2019-06-01 .. 2021-02-01"]


def test_n_days_count_from_the_first_day_of_the_window() -> None:
    slices = Per.parse("10 days").slices(
        date(2024, 1, 1), date(2024, 1, 31), scenes=(date(2024, 1, 12), date(2024, 1, 31))
    )
    assert days(slices) == [
        "2024-01-11 .. 2024-01-20",
        "2024-01-21 .. 2024-01-30",
        "2024-01-31 .. 2024-01-31",
    ]


def test_the_calendar_end_is_a_slice_end() -> None:
    last = Per.parse("year").slices(
        date(9998, 6, 1), date.max, scenes=(date(9999, 3, 1), date(9999, 12, 31))
    )
    assert days(last) == ["9999-01-01 .. 9999-12-31"]
    assert last[0].end.year == 9999


def test_too_many_slices_are_refused() -> None:
    with pytest.raises(PlanError, match="more than 100,000 slices"):
        Per.parse("1 day").slices(
            date(1700, 1, 1), date(2100, 1, 1), scenes=(date(1700, 1, 1), date(2100, 1, 1))
        )
