"""The match rule written a second time, to check what Noctis records against.

Deliberately not the repositories' statement: this one joins ``archive_item`` to
the ``imagery_finder`` row and builds the window in SQL from the finder's dates,
where the link step binds the AOI and a window computed in Python. Each clause
is the README's rule ("The match rule and the schema") as written there:

- ``ST_Intersects(footprint, location)``: touching counts; a footprint with a
  non-finite coordinate (which GEOS cannot test: it raises on some locations) by
  its bounding box, ``footprint && location``;
- ``acquired_at >= start_date 00:00 UTC`` and ``< (end_date + 1) 00:00 UTC``,
  each only when the date is set;
- ``cloud_cover <= max_cloud_cover`` when set (so an unknown cloud cover, NULL,
  is excluded);
- ``collection = ANY (collections)`` when set.

Use :data:`REFERENCE_MATCH_SQL` with asyncpg (``$1`` = the finder's id), or
:func:`reference_match_sql` with the placeholder of another driver. The rows
come ordered by id.

:func:`reference_coverage_sql` writes the coverage rule the same way: the share of the AOI on
the WGS 84 spheroid, every shape read with straight edges in lon/lat (densified to 0.25°, then
measured in the Lambert cylindrical equal-area projection, written out as a PROJ string where
the repositories use its SRID); an invalid footprint measured by its repair; a non-finite one,
or a point AOI, has none. No ``ST_Covers`` shortcut: the overlay every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import asyncpg

__all__ = [
    "REFERENCE_MATCH_SQL",
    "ReferenceCheck",
    "check_against_reference",
    "reference_coverage_sql",
    "reference_match_ids",
    "reference_match_sql",
]

_TEMPLATE: Final = """
SELECT a.id
FROM archive_item a JOIN imagery_finder f ON f.id = {finder}
WHERE a.footprint && f.location
  AND CASE WHEN NOT ST_IsValid(a.footprint)
                AND starts_with(ST_IsValidReason(a.footprint), 'Invalid Coordinate')
           THEN true
           ELSE ST_Intersects(a.footprint, f.location) END
  AND (f.start_date IS NULL OR a.acquired_at >= f.start_date::timestamp AT TIME ZONE 'UTC')
  AND (f.end_date IS NULL OR a.acquired_at < (f.end_date + 1)::timestamp AT TIME ZONE 'UTC')
  AND (f.max_cloud_cover IS NULL OR a.cloud_cover <= f.max_cloud_cover)
  AND (f.collections IS NULL OR a.collection = ANY (f.collections))
ORDER BY a.id
"""


def reference_match_sql(finder: str = "$1") -> str:
    """The ids of the items the finder matches, ``finder`` being the placeholder of its id:
    ``$1`` (asyncpg), ``:finder`` (SQLAlchemy ``text()``), ``%(finder)s`` (psycopg)."""
    return _TEMPLATE.replace("{finder}", finder)


REFERENCE_MATCH_SQL: Final = reference_match_sql()

_EQUAL_AREA = "'+proj=cea +lon_0=0 +lat_ts=0 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs'"
_COVERAGE_TEMPLATE: Final = """
    WITH f AS (
      SELECT id, location,
             ST_GeometryType(location) IN ('ST_Point', 'ST_MultiPoint') AS is_point,
             ST_Area(ST_Transform(ST_Segmentize(location, 0.25), {equal_area})) AS area
      FROM imagery_finder WHERE id = {finder}),
    m AS (
      SELECT l.archive_item_id AS id, l.coverage, a.footprint,
             ST_IsValid(a.footprint) AS valid
      FROM archive_lookup_item l JOIN archive_item a ON a.id = l.archive_item_id
      WHERE l.imagery_finder_id = {finder} AND l.dream_id = {dream}),
    pieces AS (
      SELECT m.id, m.coverage, f.is_point, f.area,
             CASE WHEN NOT m.valid
                       AND starts_with(ST_IsValidReason(m.footprint), 'Invalid Coordinate')
                  THEN NULL
                  ELSE ST_Intersection(CASE WHEN m.valid THEN m.footprint
                       ELSE ST_CollectionExtract(ST_MakeValid(m.footprint), 3) END, f.location)
             END AS piece
      FROM m, f)
    SELECT id, coverage,
           CASE WHEN is_point OR piece IS NULL THEN NULL
                ELSE least(1.0, ST_Area(ST_Transform(ST_Segmentize(piece, 0.25),
                       {equal_area})) / area)
           END AS expected
    FROM pieces ORDER BY id
"""


def reference_coverage_sql(*, finder: str, dream: str) -> str:
    """(archive item id, recorded coverage, the reference's) for each lookup row of the study,
    ordered by id; ``finder`` and ``dream`` are placeholders (``%(finder)s``, ``$1`` ...)."""
    sql = _COVERAGE_TEMPLATE.replace("{equal_area}", _EQUAL_AREA)
    return sql.replace("{finder}", finder).replace("{dream}", dream)


_RECORDED_SQL: Final = (
    "SELECT archive_item_id FROM archive_lookup_item WHERE imagery_finder_id = $1 AND dream_id = $2"
)


async def reference_match_ids(conn: asyncpg.Connection, finder_id: int) -> set[int]:
    """The ids of the archive items that finder ``finder_id`` matches, by the reference rule."""
    return {row[0] for row in await conn.fetch(REFERENCE_MATCH_SQL, finder_id)}


@dataclass(frozen=True)
class ReferenceCheck:
    """How the lookup rows recorded for a (finder, dream) pair compare with the reference."""

    matched: int
    """Items the reference rule matches."""
    missing: frozenset[int]
    """Matched by the reference, not recorded."""
    unexpected: frozenset[int]
    """Recorded, not matched by the reference."""

    @property
    def agrees(self) -> bool:
        return not self.missing and not self.unexpected


async def check_against_reference(
    conn: asyncpg.Connection, finder_id: int, dream_id: int
) -> ReferenceCheck:
    """The lookup rows of (``finder_id``, ``dream_id``) against the reference rule."""
    expected = await reference_match_ids(conn, finder_id)
    recorded = {row[0] for row in await conn.fetch(_RECORDED_SQL, finder_id, dream_id)}
    return ReferenceCheck(
        matched=len(expected),
        missing=frozenset(expected - recorded),
        unexpected=frozenset(recorded - expected),
    )
