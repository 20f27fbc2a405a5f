"""``noctis archive load``: STAC files into ``archive_item``, checked, idempotent, in batches.

::

    summary = await load_files([Path("items.ndjson")], settings=settings)
    print(summary.inserted, summary.updated, summary.unchanged)

Each file is read item by item (:mod:`noctis.stac_files`), each item checked and mapped
(:mod:`noctis.stac_items`), and the good rows written in batches of ``batch_size`` through the
unit of work (:class:`~noctis.repositories.SceneRepository`: COPY, then one upsert).

**Transactions.** A file is one transaction: it is committed when its last item is written, so
a file with a bad item (unless ``skip_invalid``), a database error or an interrupt writes
nothing. Every item of the file is still checked, so the report names every bad one. With
``commit_each_batch`` each batch is committed as it is written (less to redo after a failure of
a huge file); a bad item then stops the writing at its batch: the batches before it stay
committed, nothing from its batch or after it is written. Files are loaded in the order given;
the first file that fails stops the command, and the files before it stay loaded. Loading the
same file again is harmless: unchanged items are not touched.

**Within a file** an id may appear once: a second item with the same id is a bad item (its
position and the first one's are reported). Ids seen are kept in memory to find them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from noctis.db import make_engine, make_session_factory
from noctis.errors import FileNotLoaded, InvalidItems, LoaderError, NoctisError
from noctis.settings import Settings, get_settings
from noctis.stac_files import Entry, open_source
from noctis.stac_items import BadItem, SceneRow, item_id, parse_item
from noctis.unit_of_work import UnitOfWork

BATCH_SIZE = 10_000
KEPT_PROBLEMS = 1_000
"""Bad items kept in a summary (all are counted; the rest are only reported as they come)."""

Progress = Callable[[Path, int, int | None], None]
"""``progress(file, items_read, items_in_file or None)``, called every few hundred items."""
Report = Callable[[str], None]
"""Called with each bad item's line when bad items are skipped."""


@dataclass(slots=True)
class FileLoad:
    """What loading one file did."""

    path: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class LoadSummary:
    """What ``noctis archive load`` did, file by file and in all."""

    files: list[FileLoad]
    seconds: float

    def total(self, name: str) -> int:
        return sum(int(getattr(f, name)) for f in self.files)

    @property
    def read(self) -> int:
        return self.total("read")

    @property
    def inserted(self) -> int:
        return self.total("inserted")

    @property
    def updated(self) -> int:
        return self.total("updated")

    @property
    def unchanged(self) -> int:
        return self.total("unchanged")

    @property
    def skipped(self) -> int:
        return self.total("skipped")

    def as_dict(self) -> dict[str, Any]:
        names = ("read", "inserted", "updated", "unchanged", "skipped")
        return {
            **{name: self.total(name) for name in names},
            "seconds": round(self.seconds, 3),
            "files": [asdict(f) | {"seconds": round(f.seconds, 3)} for f in self.files],
        }


@dataclass(frozen=True, slots=True)
class LoadOptions:
    collections: frozenset[str] | None = None
    skip_invalid: bool = False
    batch_size: int = BATCH_SIZE
    commit_each_batch: bool = False
    progress: Progress | None = None
    report: Report | None = None


async def load_files(
    paths: Sequence[Path],
    *,
    settings: Settings | None = None,
    options: LoadOptions | None = None,
) -> LoadSummary:
    """Load each file in turn (module doc); raises a :class:`~noctis.errors.LoaderError`."""
    options = options or LoadOptions()
    if options.batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    start = time.perf_counter()
    engine = make_engine(settings or get_settings(), pool_size=1)
    try:
        factory = make_session_factory(engine)
        files: list[FileLoad] = []
        for path in paths:
            try:
                files.append(await _load_file(factory, Path(path), options))
            except LoaderError as e:
                e.loaded = tuple(f.path for f in files)
                raise
            except NoctisError as e:  # the database's: name the file, keep the cause
                failed = FileNotLoaded(str(path), e)
                failed.loaded = tuple(f.path for f in files)
                raise failed from e
    finally:
        await engine.dispose()
    return LoadSummary(files=files, seconds=time.perf_counter() - start)


class _FileLoader:
    """The checks of one file's items: bad ones counted and reported, duplicates caught."""

    def __init__(self, path: Path, options: LoadOptions) -> None:
        self.options = options
        self.result = FileLoad(path=str(path))
        self.seen: dict[str, str] = {}
        self.bad = 0
        self.first_bad_at = 0  # items read when the first bad one came

    def check(self, entry: Entry) -> SceneRow | None:
        self.result.read += 1
        try:
            if entry.error is not None:
                raise BadItem(entry.error)
            row = parse_item(entry.item, collections=self.options.collections)
            earlier = self.seen.setdefault(row.external_id, entry.position)
            if earlier != entry.position:
                raise BadItem(f"duplicate id: already at {earlier}")
        except BadItem as e:
            self._bad(entry, e.reason)
            return None
        return row

    def _bad(self, entry: Entry, reason: str) -> None:
        shown = item_id(entry.item)
        line = f"{entry.position}{f' (id {shown})' if shown else ''}: {reason}"
        self.bad += 1
        self.first_bad_at = self.first_bad_at or self.result.read
        if len(self.result.problems) < KEPT_PROBLEMS:
            self.result.problems.append(line)
        if self.options.skip_invalid:
            self.result.skipped += 1
            if self.options.report is not None:
                self.options.report(line)

    @property
    def writing(self) -> bool:
        """Whether rows are still written: always when bad items are skipped, else until one."""
        return self.options.skip_invalid or self.bad == 0

    def failure(self) -> InvalidItems:
        note = ""
        if self.options.commit_each_batch and self.first_bad_at > self.options.batch_size:
            note = " from the batch of its first bad item on (earlier batches are committed)"
        return InvalidItems(self.result.path, self.result.problems, count=self.bad, note=note)


def check_files(paths: Sequence[Path], options: LoadOptions | None = None) -> LoadSummary:
    """:func:`check_file` for each file in turn: what a load would read, skip and refuse."""
    start = time.perf_counter()
    files = [check_file(Path(p), options) for p in paths]
    return LoadSummary(files=files, seconds=time.perf_counter() - start)


def check_file(path: Path, options: LoadOptions | None = None) -> FileLoad:
    """Every item of ``path`` read and checked, nothing written (``noctis archive load --check``).

    Raises :class:`~noctis.errors.InvalidItems` for bad items unless ``skip_invalid`` (then they
    are in ``problems`` and ``skipped``), as a load would.
    """
    options = options or LoadOptions()
    start = time.perf_counter()
    source = open_source(Path(path), parquet_batch=options.batch_size)
    loader = _FileLoader(Path(path), options)
    for entry in source.entries:
        loader.check(entry)
    if not loader.writing:
        raise loader.failure()
    loader.result.seconds = time.perf_counter() - start
    return loader.result


async def _load_file(factory: Any, path: Path, options: LoadOptions) -> FileLoad:
    start = time.perf_counter()
    source = open_source(path, parquet_batch=options.batch_size)
    loader = _FileLoader(path, options)
    result = loader.result
    batch: list[SceneRow] = []
    async with UnitOfWork(factory) as uow:

        async def write(rows: list[SceneRow]) -> None:
            written = await uow.scenes.upsert(rows)
            result.inserted += written.inserted
            result.updated += written.updated
            result.unchanged += written.unchanged
            if options.commit_each_batch:
                await uow.commit()

        pending: asyncio.Task[None] | None = None
        try:
            for entry in source.entries:
                row = loader.check(entry)
                if row is not None and loader.writing:
                    batch.append(row)
                elif not loader.writing:
                    batch.clear()  # after a bad item nothing more is written from this file
                if result.read % 256 == 0:
                    await asyncio.sleep(0)  # the pending batch's statements go on meanwhile
                    if options.progress is not None:
                        options.progress(path, result.read, source.total)
                if len(batch) >= options.batch_size:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(write(batch))
                    batch = []
            if pending is not None:
                await pending
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
        if options.progress is not None:
            options.progress(path, result.read, source.total)
        if not loader.writing:
            raise loader.failure()  # the unit of work rolls the file back
        await write(batch)
        await uow.commit()
    result.seconds = time.perf_counter() - start
    return result
