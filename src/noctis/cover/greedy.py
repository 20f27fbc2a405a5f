"""The greedy cover: scenes by the area they newly cover, weighted by a preference.

**The step.** Each round takes the scene with the largest ``weight * gain``, where ``gain`` is
the area (m², :mod:`.areas`) of its piece that no scene taken so far covers, until the scenes
taken cover ``target_m2`` or no scene adds more than ``min_gain_m2``. Greedy set cover is within
a factor ln(n) + 1 of the optimum; the weights trade a little of that for clearer, newer scenes.

**Lazy evaluation.** A scene's gain can only shrink as scenes are taken (coverage is
submodular), so a gain computed earlier is an upper bound of the gain now. The scenes wait in a
max-heap on their last known ``weight * gain``; the one on top is recomputed, and taken if it is
still on top, else pushed back with its new value. Each scene keeps its *remainder* (the part of
its piece not yet covered): a recomputation subtracts only the scenes taken since its last one,
and only those whose bounding box meets the remainder's. A footprint not yet clipped to the AOI
waits with its whole area as its bound and is clipped when it first reaches the top. The gains
are exact overlays (GEOS), so the area a plan covers is the sum of its gains, and laziness
changes no choice.

**The lower bound** on the optimum (the fewest scenes covering the goal, the smaller of the
target and what the plan covers): after ``i`` rounds the plan covers ``C_i``, and any selection
covering the goal covers at least ``goal - C_i`` outside it, each of its scenes at most its
gain now, which is at most its last known gain. So it needs at least the smallest ``k`` such
that the ``k`` largest known gains add up to ``goal - C_i``. Taken at rounds 0, 1, 2, 4, 8, …
and the last; the best is reported. Round 0 is the bound of the largest areas (of which
``ceil(goal / largest area)`` is the weaker, one-scene form).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry

from noctis.cover.areas import Floats, Objects, polygonal
from noctis.errors import PlanError

GRID_M = 0.01
"""Snapping grid (m) of the overlay retried when GEOS fails on a degenerate one."""


@dataclass(frozen=True, slots=True)
class Preference:
    """How much less a cloudy or an older scene is worth: ``weight = (1 - cloud_weight * cloud
    / 100) * (1 - recency_weight * age)``.

    ``cloud`` is the scene's cloud cover in percent (unknown counts as 100); ``age`` is 0 for a
    scene acquired at the end of its slice and 1 for one acquired at its start. With both at 0
    the plan only counts scenes. Both must be in [0, 1): a weight is never 0.
    """

    cloud_weight: float = 0.5
    recency_weight: float = 0.1

    def __post_init__(self) -> None:
        for name in ("cloud_weight", "recency_weight"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise PlanError(f"{name} must be within [0, 1), got {value!r}")

    def weights(self, cloud: Floats, age: Floats) -> Floats:
        """Each scene's weight from its cloud cover (NaN: unknown) and its age in [0, 1]."""
        clouds = np.where(np.isnan(cloud), 100.0, np.clip(cloud, 0.0, 100.0))
        ages = np.clip(age, 0.0, 1.0)
        return (1 - self.cloud_weight * clouds / 100) * (1 - self.recency_weight * ages)


@dataclass(frozen=True, slots=True)
class Cover:
    """What the greedy took: indices into its candidates, in order, and what each added."""

    picks: list[int] = field(default_factory=list)
    gains: list[float] = field(default_factory=list)
    lower_bound: int = 0

    @property
    def covered_m2(self) -> float:
        return float(sum(self.gains))


def _difference(a: object, b: object) -> object:
    try:
        return shapely.difference(a, b)
    except GEOSException:
        return polygonal(np.array([shapely.difference(a, b, grid_size=GRID_M)], dtype=object))[0]


def greedy_cover(
    shapes: Objects,
    areas: Floats,
    weights: Floats,
    *,
    target_m2: float,
    min_gain_m2: float = 0.0,
    exact: npt.NDArray[np.bool_] | None = None,
    clip: Callable[[BaseGeometry], BaseGeometry] | None = None,
) -> Cover:
    """Take candidates greedily (module doc) until they cover ``target_m2`` or none adds more
    than ``min_gain_m2``. Ties go to the larger gain, then to the lower index.

    ``areas[i]`` is the area of ``shapes[i]``; where ``exact[i]`` is False it is only an upper
    bound, and ``clip(shape)`` gives the piece that counts, computed when the candidate first
    reaches the top of the heap (a footprint to clip to the AOI: most never get there).
    """
    n = len(shapes)
    remainder = np.asarray(shapes, dtype=object).copy()
    boxes = shapely.bounds(remainder) if n else np.empty((0, 4))
    gain = np.asarray(areas, dtype=np.float64).copy()
    todo = np.zeros(n, dtype=bool) if exact is None or clip is None else ~np.asarray(exact)
    seen = np.zeros(n, dtype=np.intp)  # how many picks each remainder has had subtracted
    picks: list[int] = []
    taken: list[float] = []
    pick_boxes = np.empty((max(n, 1), 4))
    live = np.flatnonzero(gain > min_gain_m2)
    scores = (-weights[live] * gain[live]).tolist()
    heap = list(zip(scores, (-gain[live]).tolist(), live.tolist(), strict=True))
    heapq.heapify(heap)
    covered = 0.0
    checkpoints: list[tuple[float, Floats]] = [(0.0, gain.copy())]
    while heap and covered < target_m2:
        _, _, i = heapq.heappop(heap)
        if seen[i] < len(picks) or todo[i]:
            if todo[i]:
                assert clip is not None
                remainder[i] = clip(remainder[i])
                todo[i] = False
            new = pick_boxes[seen[i] : len(picks)]
            box = boxes[i]
            meets = (new[:, 0] <= box[2]) & (new[:, 2] >= box[0])
            meets &= (new[:, 1] <= box[3]) & (new[:, 3] >= box[1])
            if meets.any():
                others = [shapes[picks[seen[i] + k]] for k in np.flatnonzero(meets)]
                remainder[i] = _difference(remainder[i], shapely.union_all(others))
            gain[i] = float(shapely.area(remainder[i]))
            boxes[i] = shapely.bounds(remainder[i])
            seen[i] = len(picks)
            if gain[i] > min_gain_m2:
                heapq.heappush(heap, (-weights[i] * gain[i], -gain[i], i))
            continue
        pick_boxes[len(picks)] = shapely.bounds(shapes[i])
        picks.append(i)
        taken.append(float(gain[i]))
        covered += gain[i]
        gain[i] = 0.0
        if len(picks) & (len(picks) - 1) == 0:  # a power of two
            checkpoints.append((covered, gain.copy()))
    checkpoints.append((covered, gain))
    goal = min(target_m2, covered)
    return Cover(picks=picks, gains=taken, lower_bound=_lower_bound(checkpoints, goal))


def _lower_bound(checkpoints: list[tuple[float, Floats]], goal: float) -> int:
    best = 0
    for covered, gains in checkpoints:
        missing = goal - covered
        if missing <= 0:
            continue
        largest = np.cumsum(np.sort(gains)[::-1])
        # the fewest k whose k largest gains reach what is missing (rounding absorbed)
        k = int(np.searchsorted(largest, missing * (1 - 1e-9))) + 1
        best = max(best, min(k, len(largest)))
    return best
