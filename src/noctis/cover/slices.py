"""Time slices of a study's window: ``--per month | quarter | year | N days``.

Months, quarters and years are calendar ones (UTC days); ``N days`` slices run N days at a
time from the window's first day. Slices are listed from the one holding the study's first
scene to the one holding its last, clipped to the window; a slice in between with no scene is
listed too (a gap in the time series). ``window`` is one slice: the whole window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from noctis.errors import PlanError

Unit = Literal["window", "month", "quarter", "year", "days"]
MAX_SLICES = 100_000


@dataclass(frozen=True, slots=True)
class Slice:
    """Whole UTC days ``first .. last``, both inclusive."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the slice (the end of time for the calendar's last day)."""
        if self.last == date.max:
            return datetime.max.replace(tzinfo=UTC)
        return datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=UTC)

    def __str__(self) -> str:
        return f"{self.first.isoformat()} .. {self.last.isoformat()}"


@dataclass(frozen=True, slots=True)
class Per:
    """How a window is sliced: parse ``"month"``, ``"quarter"``, ``"year"``, ``"10 days"``."""

    unit: Unit = "window"
    days: int = 0

    @classmethod
    def parse(cls, text: str) -> Per:
        words = " ".join(text.strip().lower().split())
        if words in ("window", "month", "quarter", "year"):
            return cls(unit=words)  # type: ignore[arg-type]
        match = re.fullmatch(r"(\d{1,6}) ?days?", words)
        if match and int(match.group(1)) >= 1:
            return cls(unit="days", days=int(match.group(1)))
        raise PlanError(
            f"Unknown slice {text!r}: use window, month, quarter, year or a number of days "
            "(e.g. '10 days')"
        )

    def __str__(self) -> str:
        return f"{self.days} days" if self.unit == "days" else self.unit

    def slices(self, first: date, last: date, *, scenes: tuple[date, date]) -> list[Slice]:
        """The slices of the window ``first .. last`` from the one holding ``scenes[0]`` to the
        one holding ``scenes[1]`` (the study's first and last acquisition days)."""
        if self.unit == "window":
            return [Slice(first, last)]
        out: list[Slice] = []
        start = self._start_of(max(first, scenes[0]), first)
        stop = min(last, scenes[1])
        while start <= stop:
            following = self._next(start)
            end = last if following is None else min(following - timedelta(days=1), last)
            out.append(Slice(max(start, first), end))
            if len(out) > MAX_SLICES:
                raise PlanError(f"--per {self} makes more than {MAX_SLICES:,} slices")
            if following is None:
                break
            start = following
        return out

    def _start_of(self, day: date, anchor: date) -> date:
        if self.unit == "days":
            return anchor + timedelta(days=(day - anchor).days // self.days * self.days)
        if self.unit == "month":
            return day.replace(day=1)
        if self.unit == "quarter":
            return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
        return date(day.year, 1, 1)

    def _next(self, start: date) -> date | None:
        """The first day of the next slice; None past the calendar's end."""
        try:
            if self.unit == "days":
                return start + timedelta(days=self.days)
            months = {"month": 1, "quarter": 3, "year": 12}[self.unit]
            index = start.year * 12 + start.month - 1 + months
            return date(index // 12, index % 12 + 1, 1)
        except (OverflowError, ValueError):  # past 9999-12-31
            return None
