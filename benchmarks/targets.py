"""The issue's targets, evaluated on one run's results (ratios within the run)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from benchmarks import cases as C
from benchmarks.flowrun import FlowCase, FlowReport
from benchmarks.results import Results
from benchmarks.stats import Measurement, fmt_s, ratio

LINK_FLOOR_MAX = 1.15
PER_ROW_MIN_SPEEDUP = 10.0
PER_ROW_MIN_MATCHES = 1_000
FLOW_OVERHEAD_MAX_S = 0.300
RSS_MAX_MB = 300.0
RSS_FLAT_MAX_GROWTH = 0.10  # of the peak before the first flow
SCALING_MAX_PER_MATCH_GROWTH = 2.0


@dataclass(frozen=True)
class Ratio:
    size: int
    case: str
    matches: int
    link: Measurement
    other: Measurement

    @property
    def value(self) -> float:
        return ratio(self.link, self.other)


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    holds: bool | None  # None: not measured in this run
    detail: str = ""

    @property
    def mark(self) -> str:
        return {True: "holds", False: "**does not hold**", None: "not measured"}[self.holds]


def link_ratios(results: Results, mode: str, *, min_size: int = 0) -> list[Ratio]:
    """link / floor, ``mode`` fresh or rerun, for every (size, case) measured."""
    out: list[Ratio] = []
    for m in results.measurements:
        if m.approach != f"link {mode}" or m.size < min_size:
            continue
        floor = results.get(m.size, m.case, f"floor {mode}")
        if floor is not None:
            out.append(Ratio(m.size, m.case, m.rows, m, floor))
    return out


def per_row_speedups(results: Results, *, min_matches: int = PER_ROW_MIN_MATCHES) -> list[Ratio]:
    """(per-row time for all the rows) / (link time): ``value`` is inverted, see ``speedup``."""
    out: list[Ratio] = []
    for m in results.measurements:
        if m.approach != "link fresh" or m.rows < min_matches:
            continue
        per_row = results.get(m.size, m.case, "per-row INSERT")
        if per_row is not None:
            out.append(Ratio(m.size, m.case, m.rows, m, per_row))
    return out


def speedup(r: Ratio) -> float:
    """(the other approach's time for all the rows) / (the link's): the median of the
    per-round ratios, the projected times where the approach was capped."""
    other = r.other.projected or r.other.seconds
    if len(other) == len(r.link.seconds) and other:
        return statistics.median(o / k for o, k in zip(other, r.link.seconds, strict=True))
    return r.other.effective / r.link.median


@dataclass(frozen=True)
class FlowOverhead:
    case: str
    matches: int
    flow_s: float
    link_s: float

    @property
    def overhead_s(self) -> float:
        return self.flow_s - self.link_s


def flow_overheads(results: Results) -> list[FlowOverhead]:
    flow = results.flow
    if flow is None:
        return []
    out: list[FlowOverhead] = []
    for c in flow.cases:
        if c.steps:  # the link step of the same runs, timed inside the flow
            # The link statement (`link`); runs recorded before it was timed: `link_study`,
            # which then held the link step alone (it now also holds the union coverage).
            link_s = c.step("link") or c.step("link_study")
            out.append(FlowOverhead(c.case, c.matches, c.median, link_s))
            continue
        link = results.get(flow.size, c.case, "link fresh")
        if link is not None:
            out.append(FlowOverhead(c.case, c.matches, c.median, link.median))
    return out


def flow_peak_mb(flow: FlowReport, case: FlowCase) -> float:
    """Peak RSS while the flows ran (VmHWM reset before the first), else the lifetime peak."""
    return case.hwm_mb if flow.hwm_reset and not math.isnan(case.hwm_mb) else case.peak_rss_mb


def scaling(results: Results) -> list[Measurement]:
    key = C.SCALING_CASE.key
    return sorted(
        (m for m in results.measurements if m.case == key and m.approach == "link fresh"),
        key=lambda m: m.size,
    )


LOAD_MAX_S = 600.0


def evaluate(results: Results) -> list[Verdict]:
    verdicts: list[Verdict] = []
    big_builds = [b for b in results.builds if b.size >= 5_000_000]
    if big_builds:
        b = max(big_builds, key=lambda b: b.size)
        verdicts.append(
            Verdict(
                f"{b.size:,} items load in under {LOAD_MAX_S / 60:.0f} minutes",
                f"{b.load_s:.0f} s: COPY {b.copy_s:.0f} s, CREATE INDEX {b.index_s:.0f} s,"
                f" ANALYZE {b.analyze_s:.1f} s",
                b.load_s < LOAD_MAX_S,
                f"with the migration and a VACUUM, {b.total_s:.0f} s",
            )
        )
    sizes = sorted({m.size for m in results.measurements})
    big = [s for s in sizes if s >= 1_000_000]
    min_size = 1_000_000 if big else 0
    scope = "at 1M and 5M items" if big else "at the sizes of this run"

    fresh = link_ratios(results, "fresh", min_size=min_size)
    rerun = link_ratios(results, "rerun", min_size=min_size)
    both = fresh + rerun
    if both:
        worst = max(both, key=lambda r: r.value)
        within = sum(r.value <= LINK_FLOOR_MAX for r in both)
        over = [r for r in both if r.value > LINK_FLOOR_MAX]
        extra = max((r.link.median - r.other.median for r in over), default=0.0)
        large = [r for r in both if r.matches >= PER_ROW_MIN_MATCHES]
        large_in = sum(r.value <= LINK_FLOOR_MAX for r in large)
        verdicts.append(
            Verdict(
                f"Link step ≤ {LINK_FLOOR_MAX}x the raw-SQL floor on every case {scope}",
                f"{within} of {len(both)} (case, fresh/rerun) pairs within; worst"
                f" {worst.value:.2f}x ({worst.case} at {worst.size:,},"
                f" {fmt_s(worst.link.median)} vs {fmt_s(worst.other.median)})",
                within == len(both),
                (
                    f"{large_in} of {len(large)} within at ≥ {PER_ROW_MIN_MATCHES:,} matches;"
                    f" where it is over, the link spends at most {fmt_s(extra)} more than the floor"
                )
                if over
                else "",
            )
        )
    else:
        verdicts.append(Verdict(f"Link step ≤ {LINK_FLOOR_MAX}x the floor", "", None))

    speed = per_row_speedups(results)
    if speed:
        slowest = min(speed, key=speedup)
        verdicts.append(
            Verdict(
                f"≥ {PER_ROW_MIN_SPEEDUP:.0f}x faster than one INSERT per row"
                f" at ≥ {PER_ROW_MIN_MATCHES:,} matches",
                f"{sum(speedup(r) >= PER_ROW_MIN_SPEEDUP for r in speed)} of {len(speed)} cases;"
                f" lowest {speedup(slowest):.1f}x ({slowest.case} at {slowest.size:,},"
                f" {slowest.matches:,} matches)",
                all(speedup(r) >= PER_ROW_MIN_SPEEDUP for r in speed),
            )
        )
    else:
        verdicts.append(
            Verdict(f"≥ {PER_ROW_MIN_SPEEDUP:.0f}x faster than one INSERT per row", "", None)
        )

    overheads = flow_overheads(results)
    if overheads:
        worst_o = max(overheads, key=lambda o: o.overhead_s)
        best_o = min(overheads, key=lambda o: o.overhead_s)
        verdicts.append(
            Verdict(
                f"Flow overhead over the link step ≤ {FLOW_OVERHEAD_MAX_S * 1000:.0f} ms",
                f"{fmt_s(best_o.overhead_s)} ({best_o.case}) to {fmt_s(worst_o.overhead_s)}"
                f" ({worst_o.case})",
                worst_o.overhead_s <= FLOW_OVERHEAD_MAX_S,
            )
        )
    else:
        verdicts.append(Verdict("Flow overhead ≤ 300 ms", "", None))

    flow = results.flow
    if flow is not None and flow.cases:
        largest = max(flow.cases, key=lambda c: c.matches)
        smallest = min(flow.cases, key=lambda c: c.matches)
        peak_large, peak_small = flow_peak_mb(flow, largest), flow_peak_mb(flow, smallest)
        growth = peak_large - peak_small
        flat = growth <= RSS_FLAT_MAX_GROWTH * peak_small
        before = flow.hwm_before_first_flow_mb
        verdicts.append(
            Verdict(
                f"Flow process RSS flat in the matches, < {RSS_MAX_MB:.0f} MB",
                f"peak {peak_large:.0f} MiB with {largest.matches:,} matches ({largest.case});"
                f" {peak_small:.0f} MiB with {smallest.matches:,} ({smallest.case})",
                peak_large < RSS_MAX_MB and flat,
                f"growth from the smallest to the largest case {growth:+.0f} MiB"
                + (
                    f"; before the first flow (imports, Prefect's harness starting) the"
                    f" process peaked at {before:.0f} MiB"
                    if not math.isnan(before)
                    else ""
                ),
            )
        )
    else:
        verdicts.append(Verdict("Flow process RSS flat, < 300 MB", "", None))

    series = scaling(results)
    if len(series) >= 2:
        first, last = series[0], series[-1]
        per_first = first.median / max(first.rows, 1)
        per_last = last.median / max(last.rows, 1)
        growth = per_last / per_first
        verdicts.append(
            Verdict(
                f"{C.SCALING_CASE.key}: the link grows with the matches, not the archive",
                " → ".join(
                    f"{m.size:,}: {m.rows:,} matches, {fmt_s(m.median)}"
                    f" ({m.median / max(m.rows, 1) * 1e6:.0f} µs/match)"
                    for m in series
                ),
                growth <= SCALING_MAX_PER_MATCH_GROWTH,
                f"archive x{last.size / first.size:.0f},"
                f" matches x{last.rows / max(first.rows, 1):.1f},"
                f" time x{last.median / first.median:.1f}, time per match x{growth:.2f}",
            )
        )
    else:
        verdicts.append(Verdict(f"{C.SCALING_CASE.key} scaling", "", None))
    return verdicts
