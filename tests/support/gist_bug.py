"""The recipe of the PostgreSQL GiST bug (docs/postgres-gist-bug.md) on any table with a GiST:
dead entries on a root leaf, a nested loop whose inner GiST scan passes them, another session
splitting the root, the rest of the loop's rescans."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.support.studies import column, scalar

FORCED = (
    "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off; "
    "SET enable_material = off; SET enable_indexonlyscan = off; SET jit = off"
)


@dataclass(frozen=True)
class Recipe:
    index: str
    setup: Sequence[str]
    """Statements that fill the root leaf out of key order, then delete some rows."""
    loop: str
    """A nested loop: a few outer rows, each joined to the table through ``index``."""
    first: int
    """Rows of the loop's first outer row (its inner scan, to its end)."""
    add: Callable[[int], tuple[str, Any]]
    """The k-th extra row (SQL, parameters), somewhere in the root's key range."""


async def run_recipe(dsn: str, recipe: Recipe, *, plain_index_scans: bool) -> None:
    """Run the loop across a root split. With ``plain_index_scans``, the server's bug marks
    live entries of ``recipe.index`` dead; with bitmap scans it must not."""
    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as writer,
        await psycopg.AsyncConnection.connect(dsn) as scanner,
    ):
        # A scan marks an entry only once the deleting commit is on disk (hint bits): the test
        # server runs with synchronous_commit off.
        await writer.execute("SET synchronous_commit = on")
        for statement in recipe.setup:
            await writer.execute(statement)
        size = f"SELECT pg_relation_size('{recipe.index}') / current_setting('block_size')::int"
        assert await scalar(writer, size) == 1  # the root is a leaf
        await scanner.execute(FORCED)
        if plain_index_scans:
            await scanner.execute("SET enable_bitmapscan = off")
        else:
            await scanner.execute("SET enable_indexscan = off")
        plan = "\n".join(await column(scanner, "EXPLAIN " + recipe.loop))
        assert "Nested Loop" in plan and recipe.index in plan, plan
        assert ("Bitmap" not in plan) if plain_index_scans else ("Bitmap Index Scan" in plan)
        async with scanner.cursor(name="rescans") as cursor:
            await cursor.execute(recipe.loop)
            first = await cursor.fetchmany(recipe.first)
            assert len({r[0] for r in first}) == 1 and len(first) == recipe.first
            k = 0
            while await scalar(writer, size) == 1:  # another session splits the root
                k += 1
                await writer.execute(*recipe.add(k))
            await cursor.fetchall()  # the rescans of the other outer rows
        await scanner.commit()
