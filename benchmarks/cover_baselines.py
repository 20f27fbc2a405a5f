"""What the coverage plan is measured against: the plans users write by hand, and the same
greedy in SQL.

**The baselines** (:func:`cloud_first`, :func:`coverage_first`) sort the study's scenes, then
take them in that order until the taken ones cover the target, skipping a scene that adds no
more than the minimum area (pgstac's ``skipcovered`` and eodag's overlap filters work so, in
sort order); the target, the minimum and the areas are the plan's own, so only the choice
differs. ``cloud_first``: least cloud first (unknown last), then newest; ``coverage_first``:
the lookup row's ``coverage`` first, then least cloud, then newest.

**The SQL variant** (:func:`sql_greedy`): the greedy without laziness, written for PostGIS with
temporary tables, as one would in SQL: the pieces (the best scene of each footprint, clipped)
in a table with their remainder and gain, then per step one ``SELECT … ORDER BY weight * gain
DESC LIMIT 1`` and one ``UPDATE`` of the remainders whose piece meets the one taken
(``&&`` on a GiST index, ``ST_Difference``, the plan's equal-area areas). Run to compare with the
product's Python (shapely) greedy, which is what Noctis keeps (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np
import shapely

from benchmarks.sql import equal_area
from noctis.cover import Pieces


@dataclass(frozen=True)
class Taken:
    scenes: list[int]
    """Indices of the scenes taken, in order."""
    covered_m2: float
    seconds: float


def take_in_order(
    pieces: Pieces, order: Sequence[int], *, target_m2: float, min_gain_m2: float
) -> Taken:
    """Scenes in ``order`` (indices of scenes), each taken if it adds more than
    ``min_gain_m2``, until ``target_m2`` is covered."""
    started = time.perf_counter()
    taken: list[int] = []
    shapes: list[shapely.Geometry] = []
    boxes = np.empty((len(order), 4))
    covered, seen = 0.0, set()
    for scene in order:
        group = int(pieces.group[scene])
        if group in seen:  # the same footprint adds nothing twice
            continue
        seen.add(group)
        shape = pieces.shapes[group] if pieces.exact[group] else pieces.clip(pieces.shapes[group])
        box = shapely.bounds(shape)
        old = boxes[: len(shapes)]
        meets = (old[:, 0] <= box[2]) & (old[:, 2] >= box[0])
        meets &= (old[:, 1] <= box[3]) & (old[:, 3] >= box[1])
        others = [shapes[k] for k in np.flatnonzero(meets)]
        rest = shapely.difference(shape, shapely.union_all(others)) if others else shape
        gain = float(shapely.area(rest))
        if gain <= min_gain_m2:
            continue
        boxes[len(shapes)] = box
        shapes.append(shape)
        taken.append(int(scene))
        covered += gain
        if covered >= target_m2:
            break
    return Taken(taken, covered, time.perf_counter() - started)


def cloud_first(cloud: np.ndarray, acquired_s: np.ndarray) -> np.ndarray:
    """Least cloud first (unknown last), then newest."""
    return np.lexsort((-acquired_s, np.where(np.isnan(cloud), np.inf, cloud)))


def coverage_first(
    coverage: np.ndarray,
    cloud: np.ndarray,
    acquired_s: np.ndarray,
) -> np.ndarray:
    """Largest coverage first, then least cloud (unknown last), then newest."""
    return np.lexsort((-acquired_s, np.where(np.isnan(cloud), np.inf, cloud), -coverage))


_PIECES = f"""
CREATE TEMP TABLE cover_piece ON COMMIT DROP AS
SELECT id, weight, piece, piece AS remainder, {equal_area("piece")} AS gain, false AS taken
FROM (
  SELECT DISTINCT ON (a.footprint) l.id,
         (1 - 0.5 * coalesce(a.cloud_cover, 100) / 100)
           * (1 - 0.1 * extract(epoch FROM $4::timestamptz - a.acquired_at)
                      / extract(epoch FROM $4::timestamptz - $3::timestamptz)) AS weight,
         CASE WHEN ST_Covers($5::geometry, a.footprint) THEN a.footprint
              ELSE ST_CollectionExtract(ST_Intersection(a.footprint, $5::geometry), 3) END AS piece
  FROM archive_lookup_item l JOIN archive_item a ON a.id = l.archive_item_id
  WHERE l.dream_id = $1 AND l.imagery_finder_id = $2 AND l.coverage > 0
  ORDER BY a.footprint, 2 DESC, a.acquired_at DESC, l.id
) best
"""
_NEXT = """
SELECT id, piece, gain FROM cover_piece WHERE NOT taken AND gain > $1
ORDER BY weight * gain DESC, gain DESC, id LIMIT 1
"""
_UPDATE = f"""
UPDATE cover_piece c SET remainder = d.rest, gain = {equal_area("d.rest")}
FROM (SELECT id, ST_Difference(remainder, $1::geometry) AS rest FROM cover_piece
      WHERE NOT taken AND piece && $1::geometry AND ST_Intersects(remainder, $1::geometry)) d
WHERE c.id = d.id
"""


async def sql_greedy(
    conn: asyncpg.Connection,
    *,
    finder_id: int,
    dream_id: int,
    window: tuple[object, object],
    aoi_ewkb: bytes,
    target: float,
    min_gain: float,
) -> Taken:
    """The greedy in SQL (module doc): lookup row ids taken, the area covered, the time."""
    started = time.perf_counter()
    taken: list[int] = []
    async with conn.transaction():
        await conn.execute("SET LOCAL jit = off")
        # asyncpg has no codec for geometry: it goes as text, hex EWKB, both ways.
        await conn.execute(_PIECES, dream_id, finder_id, *window, aoi_ewkb.hex())
        await conn.execute("CREATE INDEX ON cover_piece USING gist (piece)")
        union = await conn.fetchval(
            f"SELECT coalesce({equal_area('ST_Union(piece)')}, 0) FROM cover_piece"
        )
        covered = 0.0
        while covered < target * union:
            pick = await conn.fetchrow(_NEXT, min_gain * union)
            if pick is None:
                break
            await conn.execute("UPDATE cover_piece SET taken = true WHERE id = $1", pick["id"])
            await conn.execute(_UPDATE, pick["piece"])
            taken.append(int(pick["id"]))
            covered += float(pick["gain"])
    return Taken(taken, covered, time.perf_counter() - started)
