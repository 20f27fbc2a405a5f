"""``noctis db check-indexes``: do the spatial GiST indexes still find every row?

A PostgreSQL bug (docs/postgres-gist-bug.md) can flag live entries of a GiST index as dead, so
that no query through the index finds their rows, the link step's included. Noctis' own
statements avoid what triggers it; other clients of the database may not. The check
(:class:`noctis.repositories.indexes.IndexRepository`) reads each table twice, without and
through its GiST, and names the rows the index lost. ``REINDEX INDEX CONCURRENTLY`` repairs
an index; rerunning the studies that needed the lost rows links them.
"""

from __future__ import annotations

from collections.abc import Callable

from noctis.repositories.indexes import SPATIAL_INDEXES, IndexCheck
from noctis.unit_of_work import UnitOfWork


async def check_indexes(
    open_uow: Callable[[], UnitOfWork], *, sample: int = 20
) -> list[IndexCheck]:
    """Check every spatial GiST index of the Atlas schema, each in its own read transaction."""
    checks = []
    for index in SPATIAL_INDEXES:
        async with open_uow() as uow:
            checks.append(await uow.indexes.check(index, sample=sample))
    return checks


def repair_sql(check: IndexCheck) -> str:
    return f"REINDEX INDEX CONCURRENTLY {check.index.index};"
