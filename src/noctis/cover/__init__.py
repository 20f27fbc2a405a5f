"""Coverage plans: the fewest scenes that cover an AOI, preferring clear and recent ones.

Pure computation (shapely 2 and numpy, no I/O); :mod:`noctis.plans` feeds it a study's lookup
rows and stores what it returns.

- :mod:`.areas`: the equal-area plane (areas on the WGS 84 spheroid), the pieces (footprints
  grouped, clipped to the AOI, projected) and the union;
- :mod:`.greedy`: the preference, the lazy greedy and its lower bound on the optimum;
- :mod:`.slices`: ``--per month | quarter | year | N days``;
- :mod:`.plan`: :func:`make_plan`, one greedy plan per slice.

What is exact and what is not: every area is a GEOS overlay in an equal-area projection of the
spheroid, exact but for edges longer than 0.25° that are neither meridians nor parallels (cut
into chords first: < 0.001%), and it reads edges as straight lines in lon/lat as the match rule
and ``coverage`` do (:mod:`.areas`). The greedy is exact given those areas (no raster, no
sampling); it is greedy, so within ln(n) + 1 of the optimum, and the lower bound says how far
it can be at most.
"""

from noctis.cover.areas import Pieces, equal_area, spheroid_area, union_area
from noctis.cover.greedy import Cover, Preference, greedy_cover
from noctis.cover.plan import (
    Plan,
    PlanOptions,
    PlanScene,
    PlanSummary,
    Scenes,
    SlicePlan,
    make_plan,
)
from noctis.cover.slices import Per, Slice

__all__ = [
    "Cover",
    "Per",
    "Pieces",
    "Plan",
    "PlanOptions",
    "PlanScene",
    "PlanSummary",
    "Preference",
    "Scenes",
    "Slice",
    "SlicePlan",
    "equal_area",
    "greedy_cover",
    "make_plan",
    "spheroid_area",
    "union_area",
]
