"""Do the spatial GiST indexes still find every row? (``noctis db check-indexes``)

A PostgreSQL bug (docs/postgres-gist-bug.md) can flag live entries of a GiST index as dead.
Every index scan then skips them: the rows stay in the table, but no match through the index
finds them, until a REINDEX. Noctis' own statements avoid the pattern that triggers it; other
clients of the database may not. This check counts each table's rows twice, reading the
table (no index) and reading the GiST with a condition every non-empty geometry meets, and
names the rows the index no longer finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.errors import DatabaseError


@dataclass(frozen=True, slots=True)
class SpatialIndex:
    table: str
    column: str
    index: str
    key: str
    """SQL naming a row in reports (its primary key)."""


SPATIAL_INDEXES: Final = (
    SpatialIndex("archive_item", "footprint", "ix_archive_item_footprint_acquired_at", "id::text"),
    SpatialIndex(
        "standing_study",
        "location",
        "ix_standing_study_location",
        "imagery_finder_id || '/' || dream_id",
    ),
)

_EVERYWHERE = "ST_MakeEnvelope(-1e30, -1e30, 1e30, 1e30, 4326)"


def _scans(*, seq: bool, bitmap: bool) -> TextClause:
    on = {True: "on", False: "off"}
    return text(
        f"SELECT set_config('enable_seqscan', '{on[seq]}', true), "
        "set_config('enable_indexscan', 'off', true), "
        "set_config('enable_indexonlyscan', 'off', true), "
        f"set_config('enable_bitmapscan', '{on[bitmap]}', true)"
    )


_TABLE_ONLY = _scans(seq=True, bitmap=False)
# Bitmap scans of the GiST: a single scan, and one that never flags entries itself.
_INDEX_ONLY = _scans(seq=False, bitmap=True)


@dataclass(frozen=True, slots=True)
class IndexCheck:
    index: SpatialIndex
    rows: int
    """Rows with a non-empty geometry, read from the table."""
    found: int
    """The same rows, read through the GiST."""
    missing: tuple[str, ...]
    """Up to ``sample`` of the rows the index no longer finds (their keys)."""

    @property
    def sound(self) -> bool:
        return self.found == self.rows


class IndexRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def check(self, index: SpatialIndex, *, sample: int = 20) -> IndexCheck:
        """Count ``index.table``'s rows from the table and through ``index.index``."""
        t, g = index.table, index.column
        present = f"NOT ST_IsEmpty({g})"
        through = f"{g} && {_EVERYWHERE}"
        async with translated(f"checking the index {index.index}"):
            await self._session.execute(_TABLE_ONLY)
            rows = await self._scalar(f"SELECT count(*) FROM {t} WHERE {present}")
            await self._session.execute(_INDEX_ONLY)
            counted = f"SELECT count(*) FROM {t} WHERE {through}"
            plan = await self._scalar(f"EXPLAIN (FORMAT JSON) {counted}")
            if index.index not in str(plan):  # dropped, renamed: the count would prove nothing
                raise DatabaseError(f"{index.index} is not there to read: {t} cannot be checked")
            found = await self._scalar(counted)
            missing: tuple[str, ...] = ()
            if found != rows:
                # The first branch reads the table (or its primary key), the second the GiST.
                keys = await self._session.execute(
                    text(
                        f"SELECT k FROM (SELECT {index.key} AS k FROM {t} WHERE {present} "
                        f"EXCEPT SELECT {index.key} FROM {t} WHERE {through}) AS gone "
                        "ORDER BY k LIMIT :sample"
                    ),
                    {"sample": sample},
                )
                missing = tuple(str(k) for k in keys.scalars())
        return IndexCheck(index, int(rows), int(found), missing)

    async def _scalar(self, sql: str) -> Any:
        return (await self._session.execute(text(sql))).scalar_one()
