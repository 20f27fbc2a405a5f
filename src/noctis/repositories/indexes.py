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

from sqlalchemy import FromClause, Select, TextClause, except_, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.errors import DatabaseError
from noctis.models import ArchiveItem, StandingStudy


@dataclass(frozen=True, slots=True)
class SpatialIndex:
    name: str
    table: FromClause
    column: str
    index: str
    key: tuple[str, ...]
    """The primary key's columns: a lost row is named by them, joined with ``/``."""


SPATIAL_INDEXES: Final = (
    SpatialIndex(
        "archive_item",
        ArchiveItem.__table__,
        "footprint",
        "ix_archive_item_footprint_acquired_at",
        ("id",),
    ),
    SpatialIndex(
        "standing_study",
        StandingStudy.__table__,
        "location",
        "ix_standing_study_location",
        ("imagery_finder_id", "dream_id"),
    ),
)

_TABLE_ONLY = text(
    "SELECT set_config('enable_seqscan', 'on', true), "
    "set_config('enable_indexscan', 'off', true), "
    "set_config('enable_indexonlyscan', 'off', true), "
    "set_config('enable_bitmapscan', 'off', true)"
)
# Bitmap scans of the GiST: a single scan, and one that never flags entries itself.
_THROUGH_GIST = text(
    "SELECT set_config('enable_seqscan', 'off', true), "
    "set_config('enable_indexscan', 'off', true), "
    "set_config('enable_indexonlyscan', 'off', true), "
    "set_config('enable_bitmapscan', 'on', true)"
)


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
        """Count the table's rows from the table and through ``index.index``."""
        t = index.table
        geometry = t.c[index.column]
        present = ~func.ST_IsEmpty(geometry)
        through = geometry.op("&&")(func.ST_MakeEnvelope(-1e30, -1e30, 1e30, 1e30, 4326))
        counted = select(func.count()).select_from(t).where(through)
        async with translated(f"checking the index {index.index}"):
            await self._session.execute(_TABLE_ONLY)
            rows = await self._scalar(select(func.count()).select_from(t).where(present))
            await self._session.execute(_THROUGH_GIST)
            plan = (await self._session.execute(self._explain(counted))).scalar_one()
            if index.index not in str(plan):  # dropped, renamed: the count would prove nothing
                raise DatabaseError(
                    f"{index.index} is not there to read: {index.name} cannot be checked"
                )
            found = await self._scalar(counted)
            missing: tuple[str, ...] = ()
            if found != rows:
                # The first branch reads the table (or its primary key), the second the GiST.
                key = [t.c[k] for k in index.key]
                gone = except_(select(*key).where(present), select(*key).where(through)).subquery()
                stmt = select(gone).order_by(*gone.c).limit(sample)
                lost = (await self._session.execute(stmt)).all()
                missing = tuple("/".join(str(v) for v in row) for row in lost)
        return IndexCheck(index, int(rows), int(found), missing)

    def _explain(self, stmt: Select[Any]) -> TextClause:
        """EXPLAIN of a statement built here from the schema's constants (no caller's value)."""
        dialect = self._session.get_bind().dialect
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        return text("EXPLAIN (FORMAT JSON) " + str(compiled))

    async def _scalar(self, stmt: Select[Any]) -> Any:
        return (await self._session.execute(stmt)).scalar_one()
