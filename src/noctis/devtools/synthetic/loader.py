"""COPY a synthetic archive into ``archive_item``, over a connection or a URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import TypedDict, Unpack

import asyncpg
from sqlalchemy.engine import URL, make_url

from noctis.db import libpq_dsn
from noctis.devtools.synthetic.batch import COPY_COLUMNS
from noctis.devtools.synthetic.scenes import generate
from noctis.devtools.synthetic.spec import ArchiveSpec

__all__ = ["load_archive", "load_archive_url"]

Progress = Callable[[int, int], None]


class LoadOptions(TypedDict, total=False):
    """The keyword options of :func:`load_archive`, which :func:`load_archive_url` passes on."""

    progress: Progress | None
    batch_size: int
    table: str
    schema_name: str | None


async def load_archive(
    conn: asyncpg.Connection,
    spec: ArchiveSpec,
    *,
    progress: Progress | None = None,
    batch_size: int = 50_000,
    table: str = "archive_item",
    schema_name: str | None = None,
) -> int:
    """COPY the archive of ``spec`` into ``table``; returns the number of rows written.

    One COPY statement, so all or nothing. Batches are generated in a worker
    thread, one ahead, while the server ingests the previous one.
    ``progress(rows_sent, spec.size)`` is called after each batch is handed
    over. Creates no table and no index.
    """
    if spec.size == 0:
        return 0
    batches = generate(spec, batch_size=batch_size)
    sent = 0

    def encode_next() -> tuple[int, bytes] | None:
        batch = next(batches, None)
        return None if batch is None else (len(batch), batch.to_copy_text().encode())

    async def chunks() -> AsyncGenerator[bytes, None]:
        nonlocal sent
        upcoming = asyncio.ensure_future(asyncio.to_thread(encode_next))
        try:
            while (ready := await upcoming) is not None:
                upcoming = asyncio.ensure_future(asyncio.to_thread(encode_next))
                rows, data = ready
                yield data
                sent += rows
                if progress is not None:
                    progress(sent, spec.size)
        finally:
            upcoming.cancel()

    source = chunks()
    try:
        status = await conn.copy_to_table(
            table,
            source=source,
            columns=list(COPY_COLUMNS),
            schema_name=schema_name,
            format="text",
        )
    finally:
        await source.aclose()
    return int(status.split()[-1])


async def load_archive_url(
    url: str | URL, spec: ArchiveSpec, **options: Unpack[LoadOptions]
) -> int:
    """:func:`load_archive` over a new connection to ``url``, with the same options.

    ``url`` is a SQLAlchemy URL or its string, with any PostgreSQL driver
    (``postgresql+asyncpg://...``) or none (``postgresql://...``).
    """
    conn = await asyncpg.connect(libpq_dsn(make_url(url)))
    try:
        return await load_archive(conn, spec, **options)
    finally:
        await conn.close()
