"""A study's rows, or a finder's matches, as a Polars DataFrame in one call (connectorx).

Needs the ``notebook`` extra (connectorx, polars, pyarrow); :func:`to_geopandas` needs the
``geo`` extra (geopandas). Sync, or async with ``await`` (Jupyter)::

    from noctis.frames import study_frame, to_geopandas
    frame = study_frame(7, 3)              # ImageryFinder 7 for Dream 3: a polars.DataFrame
    gdf = to_geopandas(frame)              # a GeoDataFrame in EPSG:4326
    plan = plan_frame(7, 3)                # the scenes of its stored coverage plan

    frame = await read_study(7, 3)         # the same, from async code

Columns: ``archive_item_id``, ``external_id``, ``collection``, ``acquired_at`` (UTC),
``cloud_cover``, ``gsd``, ``coverage`` (a study only), ``properties`` (JSON text) and
``footprint`` (ISO WKB: shapely, GeoPandas and polars-st read it directly). A study's rows come
in archive item id order, a finder's matches newest first.

Before connectorx runs, the study (or finder) goes through the flow's own check
(:func:`noctis.study.check_study`) on a normal connection, which also fails fast, within
``ATLAS_DB_CONNECT_TIMEOUT``, when Atlas is down: connectorx itself retries a refused
connection for about 30 s. The SQL is the repositories' (:mod:`noctis.repositories.bulk`,
built from the match rule); connectorx's failures, a ``PanicException`` included, become
:class:`~noctis.errors.DatabaseError` naming the study, never the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import shapely

from noctis.db import libpq_dsn
from noctis.errors import DatabaseError, DatabaseUnavailable, MissingExtra, NoctisError
from noctis.finders import aoi_limits, check_finder
from noctis.notebook import open_uow, run_sync
from noctis.redaction import redact
from noctis.repositories import bulk
from noctis.settings import Settings, get_settings
from noctis.study import CheckedStudy, check_study

if TYPE_CHECKING:
    import geopandas
    import polars
    import pyarrow

T = TypeVar("T")
BATCH_ROWS = 10_000
"""Rows per record batch when streaming a study (:func:`study_batches`)."""
_TRANSIENT = ("connection refused", "timed out", "connection closed", "terminating connection")


@contextlib.contextmanager
def needs(what: str, extra: str = "notebook") -> Iterator[None]:
    """Around the imports of optional dependencies: a missing one raises :class:`MissingExtra`
    naming the extra that installs it (``with needs("noctis.frames"): import polars``)."""
    try:
        yield
    except ImportError as e:
        raise MissingExtra(what, extra, e.name or str(e)) from e


@dataclass(frozen=True, slots=True)
class StudyRows:
    """A checked study and how many lookup rows it has; with ``plan`` (a slicing: ``window``,
    ``month``, …), how many scenes its stored coverage plans of that slicing take (None: no
    plan of that slicing is stored)."""

    study: CheckedStudy
    rows: int | None
    plan: str | None = None

    @property
    def label(self) -> str:
        return f"ImageryFinder {self.study.finder_id} for Dream {self.study.dream_id}"

    def sql(self) -> str:
        """The bulk read of these rows: the lookup rows, or the plan's scenes."""
        ids = {"finder_id": self.study.finder_id, "dream_id": self.study.dream_id}
        if self.plan is None:
            return bulk.study_sql(**ids)
        return bulk.plan_sql(**ids, per=self.plan)


async def check_study_rows(
    finder_id: int, dream_id: int, *, settings: Settings | None = None, plan: str | None = None
) -> StudyRows:
    """The flow's check of the study, and its number of lookup rows (or, with ``plan``, of
    scenes in its stored plans of that slicing); nothing is written."""
    if plan is not None:
        from noctis.cover import Per  # shapely: only for plans

        plan = str(Per.parse(plan))  # '10 Day' is the plan stored as '10 days'; 'bogus' fails
    async with open_uow(settings) as uow:
        limits = aoi_limits(settings or get_settings())
        study = await check_study(uow, finder_id=finder_id, dream_id=dream_id, limits=limits)
        ids = {"finder_id": finder_id, "dream_id": dream_id}
        if plan is None:
            rows: int | None = await uow.lookups.count(**ids)
        else:
            rows = await uow.plans.count_items(**ids, per=plan)
    return StudyRows(study=study, rows=rows, plan=plan)


async def read_study(
    finder_id: int, dream_id: int, *, settings: Settings | None = None
) -> polars.DataFrame:
    """Every lookup row of the study (a finder for a dream) with its item, as one DataFrame."""
    settings = settings or get_settings()
    checked = await check_study_rows(finder_id, dream_id, settings=settings)
    sql = bulk.study_sql(finder_id=finder_id, dream_id=dream_id)
    doing = f"reading the lookup rows of {checked.label}"
    return await asyncio.to_thread(_frame, settings, sql, doing)


def study_frame(
    finder_id: int, dream_id: int, *, settings: Settings | None = None
) -> polars.DataFrame:
    """:func:`read_study` for sync code (inside Jupyter's running loop too)."""
    return run_sync(read_study(finder_id, dream_id, settings=settings))


async def read_matches(
    finder_id: int, *, settings: Settings | None = None, limit: int | None = None
) -> polars.DataFrame:
    """The archive items matching the finder now (the match rule, nothing written)."""
    settings = settings or get_settings()
    async with open_uow(settings) as uow:
        finder = await check_finder(uow, finder_id, limits=aoi_limits(settings))
    sql = bulk.matches_sql(finder.criteria, limit=limit)
    doing = f"reading the matches of ImageryFinder {finder_id}"
    return await asyncio.to_thread(_frame, settings, sql, doing)


def matches_frame(
    finder_id: int, *, settings: Settings | None = None, limit: int | None = None
) -> polars.DataFrame:
    """:func:`read_matches` for sync code (inside Jupyter's running loop too)."""
    return run_sync(read_matches(finder_id, settings=settings, limit=limit))


async def read_plan(
    finder_id: int, dream_id: int, *, per: str = "window", settings: Settings | None = None
) -> polars.DataFrame:
    """The scenes of the study's stored coverage plans of slicing ``per`` (``noctis plan``; the
    flow stores the ``window`` one), slice by slice in plan order: the columns of
    :func:`read_study`, then ``plan_slice_start``, ``plan_slice_end``, ``plan_rank``,
    ``plan_gain_m2`` and ``plan_covered_m2``. No stored plan: an empty frame."""
    settings = settings or get_settings()
    checked = await check_study_rows(finder_id, dream_id, settings=settings, plan=per)
    doing = f"reading the coverage plan of {checked.label}"
    return await asyncio.to_thread(_frame, settings, checked.sql(), doing)


def plan_frame(
    finder_id: int, dream_id: int, *, per: str = "window", settings: Settings | None = None
) -> polars.DataFrame:
    """:func:`read_plan` for sync code (inside Jupyter's running loop too)."""
    return run_sync(read_plan(finder_id, dream_id, per=per, settings=settings))


def study_batches(
    settings: Settings, checked: StudyRows, *, batch_rows: int = BATCH_ROWS
) -> Iterator[pyarrow.RecordBatch]:
    """The study's rows (or its plan's scenes) as Arrow record batches, streamed (one query,
    one snapshot)."""
    with needs("noctis.frames"):
        import connectorx as cx
    sql = checked.sql()
    what = "lookup rows" if checked.plan is None else "coverage plan"
    doing = f"reading the {what} of {checked.label}"
    reader = _guarded(
        settings,
        doing,
        lambda: cx.read_sql(
            connection_string(settings),
            sql,
            return_type="arrow_stream",
            batch_size=batch_rows,
            pre_execution_query=_session_settings(settings),
        ),
    )
    batches = iter(reader)
    while True:
        batch = _guarded(settings, doing, lambda: next(batches, None))
        if batch is None:
            return
        if batch.num_rows:
            yield _utc(batch)


def to_geopandas(frame: polars.DataFrame) -> geopandas.GeoDataFrame:
    """A frame of this module as a GeoDataFrame (geometry from ``footprint``, EPSG:4326)."""
    with needs("noctis.frames.to_geopandas", extra="geo"):
        import geopandas as gpd
    geometry = shapely.from_wkb(frame.get_column("footprint").to_numpy())
    data = frame.drop("footprint").to_pandas()
    return gpd.GeoDataFrame(data, geometry=geometry, crs="EPSG:4326")


def connection_string(settings: Settings) -> str:
    """The libpq URL connectorx connects with (TLS parameters included), with a connect
    timeout. Never print it."""
    seconds = max(1, math.ceil(settings.atlas_db_connect_timeout))
    url = settings.atlas_libpq_url.update_query_dict({"connect_timeout": str(seconds)})
    return libpq_dsn(url)


def _session_settings(settings: Settings) -> list[str]:
    return bulk.session_settings(statement_timeout_ms=settings.atlas_db_statement_timeout_ms)


def _frame(settings: Settings, sql: str, doing: str) -> polars.DataFrame:
    with needs("noctis.frames"):
        import connectorx as cx
        import polars as pl
    table = _guarded(
        settings,
        doing,
        lambda: cx.read_sql(
            connection_string(settings),
            sql,
            return_type="arrow",
            pre_execution_query=_session_settings(settings),
        ),
    )
    frame = pl.from_arrow(table)  # zero-copy
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.col("acquired_at").dt.convert_time_zone("UTC"))


def _utc(batch: pyarrow.RecordBatch) -> pyarrow.RecordBatch:
    with needs("noctis.frames"):
        import pyarrow as pa
    index = batch.schema.get_field_index("acquired_at")
    column = batch.column(index).cast(pa.timestamp("us", tz="UTC"))
    return batch.set_column(index, pa.field("acquired_at", column.type), column)


def _guarded(settings: Settings, doing: str, call: Callable[[], T]) -> T:
    """Run a connectorx call; its errors (a ``PanicException`` too) become Noctis errors."""
    try:
        return call()
    except NoctisError:
        raise
    except Exception as e:
        raise _translate(e, settings, doing) from _chainable(e, settings)
    except BaseException as e:
        if type(e).__name__ != "PanicException":  # KeyboardInterrupt, SystemExit, cancellation
            raise
        raise _translate(e, settings, doing) from _chainable(e, settings)


def _chainable(error: BaseException, settings: Settings) -> BaseException | None:
    """The original error, unless its text holds a secret (then it is not chained)."""
    text = str(error)
    return error if redact(text, settings.secrets()) == text else None


def _translate(error: BaseException, settings: Settings, doing: str) -> DatabaseError:
    reason = redact(" ".join(str(error).split()), settings.secrets()) or type(error).__name__
    if type(error).__name__ == "PanicException":
        reason = f"connectorx cannot read the result ({reason})"
    message = f"Atlas database error while {doing} (connectorx): {reason}"
    if any(word in reason.lower() for word in _TRANSIENT):
        return DatabaseUnavailable(message)
    return DatabaseError(message)
