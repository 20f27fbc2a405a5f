"""Do the spatial GiST indexes still find every row? (``noctis db check-indexes``)

A PostgreSQL bug (docs/postgres-gist-bug.md) can flag live entries of a GiST index as dead.
Every index scan then skips them: the rows stay in the table, but no match through the index
finds them, until a REINDEX. Noctis' own statements avoid the pattern that triggers it; other
clients of the database may not. This check counts each table's rows twice, reading the
table (no index) and reading the GiST with a condition every non-empty geometry meets, and
names the rows the index no longer finds.

- One snapshot (REPEATABLE READ, READ ONLY) for the counts and the names: writers beside the
  check neither raise a false alarm nor hide a loss.
- The GiST is read with one plain index scan, checked in the plan (node and index name). A
  bitmap scan would not do: past ``work_mem`` its pages turn lossy, every row of a lossy
  page is rechecked against the condition, which all pass, and a lost row that shares a page
  with a found one would be counted. A single scan cannot trigger the bug (it needs rescans).
- No statement timeout: on a large archive the check reads the whole table and index.
"""

from __future__ import annotations

import json
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
    """The primary key's columns, which name a lost row."""


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

_SNAPSHOT = text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
_TABLE_ONLY = text(
    "SELECT set_config('statement_timeout', '0', true), "
    "set_config('enable_seqscan', 'on', true), "
    "set_config('enable_indexscan', 'off', true), "
    "set_config('enable_indexonlyscan', 'off', true), "
    "set_config('enable_bitmapscan', 'off', true)"
)
_THROUGH_GIST = text(
    "SELECT set_config('enable_seqscan', 'off', true), "
    "set_config('enable_indexscan', 'on', true), "
    "set_config('enable_indexonlyscan', 'off', true), "
    "set_config('enable_bitmapscan', 'off', true)"
)


@dataclass(frozen=True, slots=True)
class IndexCheck:
    index: SpatialIndex
    rows: int
    """Rows with a non-empty geometry, read from the table."""
    found: int
    """The same rows, read through the GiST."""
    missing: tuple[tuple[int, ...], ...]
    """Up to ``sample`` of the rows the index no longer finds: their keys (``index.key``)."""

    @property
    def sound(self) -> bool:
        return self.found == self.rows


def _scans(plan: Any) -> set[tuple[str, str]]:
    """(node type, index name) of every node of an EXPLAIN (FORMAT JSON) plan."""
    found: set[tuple[str, str]] = set()
    nodes = [plan[0]["Plan"]] if isinstance(plan, list) else [plan]
    while nodes:
        node = nodes.pop()
        if "Index Name" in node:
            found.add((node["Node Type"], node["Index Name"]))
        nodes.extend(node.get("Plans", []))
    return found


class IndexRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def check(self, index: SpatialIndex, *, sample: int = 20) -> IndexCheck:
        """Count the table's rows from the table and through ``index.index`` (module doc).
        Call it first in its transaction (it sets the isolation level)."""
        t = index.table
        geometry = t.c[index.column]
        present = ~func.ST_IsEmpty(geometry)
        through = geometry.op("&&")(func.ST_MakeEnvelope(-1e30, -1e30, 1e30, 1e30, 4326))
        key = [t.c[k] for k in index.key]
        counted = select(func.count()).select_from(t).where(through)
        # The first branch reads the table (or its primary key), the second the GiST.
        gone = except_(select(*key).where(present), select(*key).where(through)).subquery()
        lost = select(gone).order_by(*gone.c).limit(sample)
        async with translated(f"checking the index {index.index}"):
            await self._session.execute(_SNAPSHOT)
            await self._session.execute(_TABLE_ONLY)
            rows = int(await self._scalar(select(func.count()).select_from(t).where(present)))
            await self._session.execute(_THROUGH_GIST)
            for stmt in (counted, lost):
                await self._reads_the_gist(stmt, index)
            found = int(await self._scalar(counted))
            missing: tuple[tuple[int, ...], ...] = ()
            if found != rows:
                missing = tuple(tuple(r) for r in (await self._session.execute(lost)).all())
        if found > rows:  # impossible in one snapshot: the index has rows the table has not
            raise DatabaseError(
                f"{index.index} finds {found:,} rows of {index.name}, which has {rows:,}: "
                "rebuild it (REINDEX INDEX CONCURRENTLY) and check again"
            )
        return IndexCheck(index, rows, found, missing)

    async def _reads_the_gist(self, stmt: Select[Any], index: SpatialIndex) -> None:
        """Fail unless the plan reads ``index`` with a plain index scan (else the count would
        prove nothing: a dropped or renamed index, a lossy bitmap)."""
        dialect = self._session.get_bind().dialect
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        raw = await self._scalar(text("EXPLAIN (FORMAT JSON) " + str(compiled)))
        plan = json.loads(raw) if isinstance(raw, str) else raw
        if ("Index Scan", index.index) not in _scans(plan):
            raise DatabaseError(
                f"{index.name} cannot be checked: no plain index scan of {index.index} in the "
                "plan (is the index there?)"
            )

    async def _scalar(self, stmt: Select[Any] | TextClause) -> Any:
        return (await self._session.execute(stmt)).scalar_one()
