"""Timing: warm-up, then N timed runs, each after an untimed setup; median, min and max."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


@dataclass
class Measurement:
    """Timed runs of one approach on one case at one archive size.

    ``seconds`` are the wall times of the timed runs (warm-ups excluded).
    ``rows`` is what a run processed: the matches (fresh: rows inserted; rerun:
    rows matched, none inserted). When an approach is capped, ``rows_done`` is
    what it actually wrote per run and ``projected`` the per-run time projected
    to all ``rows`` (see :func:`project`).
    """

    size: int
    case: str
    approach: str
    seconds: list[float]
    rows: int
    rows_done: int | None = None
    projected: list[float] | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)

    @property
    def capped(self) -> bool:
        return self.rows_done is not None and self.rows_done < self.rows

    @property
    def effective(self) -> float:
        """The median time for all the rows: projected when capped, measured otherwise."""
        if self.projected:
            return statistics.median(self.projected)
        return self.median

    @property
    def rows_per_s(self) -> float | None:
        if self.rows <= 0 or self.effective <= 0:
            return None
        return self.rows / self.effective

    @staticmethod
    def from_json(data: dict[str, Any]) -> Measurement:
        return Measurement(**data)


async def measure(
    run: Callable[[], Awaitable[T]],
    *,
    runs: int,
    warmups: int,
    setup: Callable[[], Awaitable[None]] | None = None,
) -> list[tuple[float, T]]:
    """``warmups`` untimed runs, then ``runs`` timed ones; ``setup`` runs untimed before each.

    The garbage collector is run in the setup, so a collection of an earlier
    run's garbage does not land in the next timed run.
    """
    out: list[tuple[float, T]] = []
    for i in range(warmups + runs):
        if setup is not None:
            await setup()
        gc.collect()
        started = time.perf_counter()
        result = await run()
        elapsed = time.perf_counter() - started
        if i >= warmups:
            out.append((elapsed, result))
    return out


async def measure_interleaved(
    entries: list[tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[None]] | None]],
    *,
    runs: int,
    warmups: int,
    after_warmup: Callable[[int], Awaitable[None]] | None = None,
    max_runs: int | None = None,
    round_budget_s: float = 0.0,
) -> list[list[tuple[float, Any]]]:
    """Like :func:`measure` for several approaches at once, taking turns run by run.

    Round ``i`` runs every entry once, starting from entry ``i mod n``, so a slow
    spell of the machine (a noisy neighbour, a checkpoint) hits every approach
    alike and their ratios stay fair. Each entry is ``(run, setup)``;
    ``after_warmup(k)`` runs (untimed) right after entry ``k``'s first warm-up.
    With ``max_runs`` and ``round_budget_s``, cheap groups get more rounds: as
    many as fit in the budget after the warm-up round, between ``runs`` and
    ``max_runs``.
    """
    out: list[list[tuple[float, Any]]] = [[] for _ in entries]
    n = len(entries)
    total = warmups + runs
    i = 0
    while i < total:
        round_started = time.perf_counter()
        for j in range(n):
            k = (i + j) % n
            run, setup = entries[k]
            if setup is not None:
                await setup()
            gc.collect()
            started = time.perf_counter()
            result = await run()
            elapsed = time.perf_counter() - started
            if i >= warmups:
                out[k].append((elapsed, result))
            elif i == 0 and after_warmup is not None:
                await after_warmup(k)
        if i == 0 and max_runs is not None and round_budget_s > 0:
            per_round = max(time.perf_counter() - round_started, 1e-6)
            fit = int(round_budget_s / per_round)
            total = warmups + max(runs, min(max_runs, fit))
        i += 1
    return out


class Timed(Protocol):
    @property
    def seconds(self) -> list[float]: ...

    @property
    def median(self) -> float: ...


def ratio(a: Timed, b: Timed) -> float:
    """a / b. When both were timed taking turns (same number of runs, run i of each in the
    same round), the median of the per-round ratios: a slow spell of the machine then
    cancels out. Otherwise the ratio of the medians."""
    if len(a.seconds) == len(b.seconds) and a.seconds:
        return statistics.median(x / y for x, y in zip(a.seconds, b.seconds, strict=True))
    return a.median / b.median


def fmt_s(seconds: float | None) -> str:
    """A duration for tables: ms below 10 s, else seconds."""
    if seconds is None:
        return "n/a"
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 10:
        return f"{seconds * 1000:,.0f} ms"
    return f"{seconds:,.1f} s"


def fmt_rate(rows_per_s: float | None) -> str:
    if rows_per_s is None:
        return "n/a"
    if rows_per_s >= 10_000:
        return f"{rows_per_s / 1000:,.0f}k/s"
    return f"{rows_per_s:,.0f}/s"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def spread(m: Measurement) -> str:
    """``median (min .. max)``."""
    return f"{fmt_s(m.median)} ({fmt_s(m.min)} .. {fmt_s(m.max)})"
