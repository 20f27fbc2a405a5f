"""A coverage plan of some scenes over an AOI, per time slice: :func:`make_plan` (pure).

The target is a share of what *all* the scenes together cover (``union_m2``, the whole window),
for every slice alike: a month whose scenes cover less than that cannot reach it, and its plan
says how far it got. Scenes of one slice that share a footprint compete for one piece: only the
best by the preference (then the newest, then the first given) can be taken.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from noctis.cover.areas import Floats, Pieces
from noctis.cover.greedy import Preference, greedy_cover
from noctis.cover.slices import Per, Slice
from noctis.errors import PlanError

ROUNDING = 1e-9
"""Relative slack when comparing areas summed in a different order."""


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """What a plan aims at. ``target``: the share of what all the study's scenes cover that the
    plan must cover, in (0, 1]; ``min_gain``: a scene must add more than this share of it."""

    per: Per = field(default_factory=Per)
    target: float = 0.99
    min_gain: float = 1e-4
    preference: Preference = field(default_factory=Preference)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target) and 0.0 < self.target <= 1.0):
            raise PlanError(
                f"target must be within (0, 1], got {self.target!r}: it is the share of what "
                "the study's scenes together cover that the plan must cover (default 0.99)"
            )
        if not (math.isfinite(self.min_gain) and 0.0 <= self.min_gain < 1.0):
            raise PlanError(f"min_gain must be within [0, 1), got {self.min_gain!r}")


@dataclass(frozen=True, slots=True)
class Scenes:
    """The candidate scenes, column by column: keys (lookup row ids: the last tie-break),
    acquisition times (POSIX seconds), cloud cover (None: unknown) and footprints (WKB, lon/lat,
    finite; an invalid one is repaired)."""

    keys: Sequence[int] | npt.NDArray[np.int64]
    acquired_s: Sequence[float] | Floats
    cloud_cover: Sequence[float | None] | Floats
    """None or NaN: unknown."""
    footprints: Sequence[bytes]

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True, slots=True)
class PlanScene:
    index: int
    """Position of the scene in :class:`Scenes`."""
    gain_m2: float
    """Area of the AOI it covers that the scenes before it in the plan do not."""


@dataclass(frozen=True, slots=True)
class SlicePlan:
    slice: Slice
    candidates: int
    """Scenes acquired in the slice."""
    scenes: list[PlanScene]
    target_m2: float
    lower_bound: int
    """No selection of this slice's scenes covering what the plan covers (at most the target)
    has fewer scenes than this."""

    @property
    def covered_m2(self) -> float:
        return float(sum(s.gain_m2 for s in self.scenes))

    @property
    def reached(self) -> bool:
        return self.covered_m2 >= self.target_m2 * (1 - ROUNDING)


@dataclass(frozen=True, slots=True)
class Plan:
    options: PlanOptions
    aoi_m2: float
    union_m2: float
    """What all the scenes together cover (m²): the base of the target."""
    slices: list[SlicePlan]
    seconds: float = 0.0

    def share(self, covered_m2: float) -> float | None:
        """``covered_m2`` as a share of ``union_m2`` (None when nothing is covered at all)."""
        return min(1.0, covered_m2 / self.union_m2) if self.union_m2 > 0 else None

    def aoi_share(self, covered_m2: float) -> float:
        return min(1.0, covered_m2 / self.aoi_m2) if self.aoi_m2 > 0 else 0.0


def make_plan(
    scenes: Scenes,
    aoi: BaseGeometry,
    window: tuple[date | None, date | None],
    options: PlanOptions,
) -> Plan:
    """One greedy plan per slice of ``window`` (``None`` sides: the scenes' first/last day)."""
    started = time.perf_counter()
    if aoi.geom_type not in ("Polygon", "MultiPolygon"):
        raise PlanError(f"a plan needs a Polygon or MultiPolygon AOI, not a {aoi.geom_type}")
    pieces = Pieces.of(scenes.footprints, aoi)
    union_m2 = pieces.union_area()
    at = np.asarray(scenes.acquired_s, dtype=np.float64)
    cloud = np.asarray(scenes.cloud_cover, dtype=np.float64)  # None -> NaN
    keys = np.asarray(scenes.keys, dtype=np.int64)
    plans: list[SlicePlan] = []
    if len(scenes):
        days = (_day(at.min()), _day(at.max()))
        first, last = window[0] or days[0], window[1] or days[1]
        for part in options.per.slices(first, last, scenes=days):
            chosen = np.flatnonzero((at >= part.start.timestamp()) & (at < part.end.timestamp()))
            plans.append(_slice_plan(part, chosen, pieces, at, cloud, keys, union_m2, options))
    return Plan(
        options=options,
        aoi_m2=float(shapely.area(pieces.aoi)),
        union_m2=union_m2,
        slices=plans,
        seconds=time.perf_counter() - started,
    )


def _day(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, tz=UTC).date()


def _slice_plan(
    part: Slice,
    chosen: npt.NDArray[np.intp],
    pieces: Pieces,
    at: Floats,
    cloud: Floats,
    keys: npt.NDArray[np.int64],
    union_m2: float,
    options: PlanOptions,
) -> SlicePlan:
    target_m2 = options.target * union_m2
    if not len(chosen):
        return SlicePlan(part, 0, [], target_m2, 0)
    start, end = part.start.timestamp(), part.end.timestamp()
    age = (end - at[chosen]) / max(end - start, 1.0)
    weight = options.preference.weights(cloud[chosen], age)
    # The best scene of each footprint: highest weight, then newest, then first given.
    order = np.lexsort((keys[chosen], -at[chosen], -weight))
    groups, first = np.unique(pieces.group[chosen][order], return_index=True)
    best = order[first]
    cover = greedy_cover(
        pieces.shapes[groups],
        pieces.areas[groups],
        weight[best],
        target_m2=target_m2,
        min_gain_m2=options.min_gain * union_m2,
        exact=pieces.exact[groups],
        clip=pieces.clip,
    )
    picked = [
        PlanScene(int(chosen[best[p]]), g) for p, g in zip(cover.picks, cover.gains, strict=True)
    ]
    return SlicePlan(part, len(chosen), picked, target_m2, cover.lower_bound)


@dataclass(frozen=True, slots=True)
class PlanSummary:
    scenes: int
    """Scenes in the plan (all slices)."""
    coverage: float
    """Share of the AOI the plan covers (a plan per slice: each slice's, summed, at most 1)."""
    share: float | None
    """Share of what all the study's scenes cover (None when they cover nothing)."""
    lower_bound: int
    reached: bool
