"""The match rule written a second time, to check what Noctis records against.

Deliberately not the repositories' statement: this one joins ``archive_item`` to
the ``imagery_finder`` row and builds the window in SQL from the finder's dates,
where the link step binds the AOI and a window computed in Python. Each clause
is the README's rule ("The match rule and the schema") as written there:

- ``ST_Intersects(footprint, location)``: touching counts;
- ``acquired_at >= start_date 00:00 UTC`` and ``< (end_date + 1) 00:00 UTC``,
  each only when the date is set;
- ``cloud_cover <= max_cloud_cover`` when set (so an unknown cloud cover, NULL,
  is excluded);
- ``collection = ANY (collections)`` when set.

Use :data:`REFERENCE_MATCH_SQL` with asyncpg (``$1`` = the finder's id), or
:func:`reference_match_sql` with the placeholder of another driver. The rows
come ordered by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import asyncpg

__all__ = [
    "REFERENCE_MATCH_SQL",
    "ReferenceCheck",
    "check_against_reference",
    "reference_match_ids",
    "reference_match_sql",
]

_TEMPLATE: Final = """
SELECT a.id
FROM archive_item a JOIN imagery_finder f ON f.id = {finder}
WHERE ST_Intersects(a.footprint, f.location)
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
