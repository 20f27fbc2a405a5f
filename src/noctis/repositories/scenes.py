"""Writing scenes into the archive: COPY into a staging table, then one upsert per batch.

A batch of checked rows (:class:`~noctis.stac_items.SceneRow`) goes to a temporary table with
asyncpg's binary COPY (``copy_records_to_table``), then into ``archive_item`` in one statement:

.. code-block:: sql

    INSERT INTO archive_item AS item (external_id, collection, footprint, acquired_at, ...)
    SELECT external_id, collection, ST_GeomFromWKB(footprint, 4326), acquired_at, ...
    FROM noctis_archive_stage ORDER BY external_id
    ON CONFLICT (external_id) DO UPDATE SET collection = excluded.collection, ...
    WHERE (item.collection, item.footprint, ...) IS DISTINCT FROM (excluded.collection, ...)
    RETURNING (xmax = 0) AS inserted

A re-delivered item updates its row and never adds one; an item delivered again **unchanged**
is not touched at all (the ``WHERE`` skips the update, so no new row version, no trigger fires).
Rows go in ``external_id`` order, so two loaders writing overlapping batches lock rows in the
same order instead of deadlocking. The staging table lives for the transaction (``ON COMMIT
DROP``); the caller's unit of work owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import shapely
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from noctis.db import translated
from noctis.stac_items import SceneRow

STAGE: Final = "noctis_archive_stage"
COLUMNS: Final = (
    "external_id",
    "collection",
    "footprint",
    "acquired_at",
    "cloud_cover",
    "gsd",
    "properties",
)
"""The columns written, in staging order: every column a STAC item sets."""

_CREATE_STAGE = text(
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} ("
    "external_id text NOT NULL, collection text NOT NULL, footprint bytea NOT NULL, "
    "acquired_at timestamptz NOT NULL, cloud_cover real, gsd real, properties jsonb NOT NULL"
    ") ON COMMIT DROP"
)
_EMPTY_STAGE = text(f"TRUNCATE {STAGE}")

_SET = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
_MINE = ", ".join(f"item.{c}" for c in COLUMNS[1:])
_THEIRS = ", ".join(f"excluded.{c}" for c in COLUMNS[1:])
_SELECTED = ", ".join("ST_GeomFromWKB(footprint, 4326)" if c == "footprint" else c for c in COLUMNS)
UPSERT: Final = text(
    f"WITH written AS ("
    f" INSERT INTO archive_item AS item ({', '.join(COLUMNS)})"
    f" SELECT {_SELECTED} FROM {STAGE} ORDER BY external_id"
    f" ON CONFLICT (external_id) DO UPDATE SET {_SET}"
    f" WHERE ({_MINE}) IS DISTINCT FROM ({_THEIRS})"
    " RETURNING (xmax = 0) AS inserted)"
    " SELECT count(*) FILTER (WHERE inserted) AS inserted,"
    " count(*) FILTER (WHERE NOT inserted) AS updated FROM written"
)


@dataclass(frozen=True, slots=True)
class Written:
    """What one batch did to the archive."""

    inserted: int
    updated: int
    unchanged: int


class SceneRepository:
    """Writes scenes into ``archive_item`` (insert, update when changed, else leave alone)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def upsert(self, rows: Sequence[SceneRow]) -> Written:
        """Insert the new rows, update the changed ones; ids must be unique within ``rows``."""
        if not rows:
            return Written(0, 0, 0)
        async with translated(f"writing {len(rows):,} scenes into archive_item"):
            await self._session.execute(_CREATE_STAGE)  # also opens the transaction
            await self._session.execute(_EMPTY_STAGE)
            driver = await self._driver()
            footprints = shapely.to_wkb([row.footprint for row in rows]).tolist()
            records = [_record(row, wkb) for row, wkb in zip(rows, footprints, strict=True)]
            await driver.copy_records_to_table(STAGE, records=records, columns=list(COLUMNS))
            counts = (await self._session.execute(UPSERT)).one()
        inserted, updated = int(counts.inserted), int(counts.updated)
        return Written(inserted, updated, len(rows) - inserted - updated)

    async def _driver(self) -> Any:
        """The asyncpg connection under the session, inside the session's transaction."""
        connection = await self._session.connection()
        raw = await connection.get_raw_connection()
        return raw.driver_connection


def _record(row: SceneRow, footprint: bytes) -> tuple[Any, ...]:
    return (
        row.external_id,
        row.collection,
        footprint,
        row.acquired_at,
        row.cloud_cover,
        row.gsd,
        row.properties,
    )
