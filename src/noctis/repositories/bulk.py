"""SQL text for bulk readers (connectorx), built from the same rule as every other read.

connectorx takes a SQL string and no bind parameters. The statements here are the
repositories' own: :func:`matches_sql` is ``select(...).where(*match_conditions(criteria))``,
:func:`study_sql` selects a study's lookup rows with the conditions the link step counts
with, and :func:`plan_sql` the scenes of a study's stored coverage plan. :func:`render` turns
such a statement into text for PostgreSQL by replacing every bound value with a literal it
writes itself, from the value's Python type, never by pasting a string:

- a geometry (the AOI) becomes ``ST_SetSRID(ST_GeomFromEWKB(decode('<hex>', 'hex')), 4326)``;
- a string (a collection name) becomes ``convert_from(decode('<utf-8 hex>', 'hex'), 'UTF8')``;
- a datetime becomes ``'<ISO 8601>'::timestamptz`` (aware datetimes only), an integer its
  digits, a finite float its ``repr``, None a typed ``NULL``.

Only hex digits, digits and ISO timestamps enter the text, so no value can change what the
statement means. Anything else (a value type not listed) is refused with a ``TypeError``.

The footprint is selected as ISO WKB (``ST_AsBinary``): connectorx cannot read PostGIS'
geometry type, and ISO WKB is what shapely, GeoPandas, GeoParquet and polars-st read. A
footprint with an ``Infinity`` or ``NaN`` coordinate (bad archive data, counted as suspect by
the flow) is selected as NULL: GEOS refuses it, JSON cannot spell it, and a GeoParquet bbox
that holds it is not JSON either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from geoalchemy2 import WKBElement
from sqlalchemy import Select, and_, case, cast, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ColumnElement, literal_column
from sqlalchemy.types import NullType

from noctis.models import ArchiveItem, ArchiveLookupItem, CoveragePlan, CoveragePlanItem
from noctis.repositories.archive import MatchCriteria, match_conditions
from noctis.repositories.geo import finite
from noctis.repositories.keys import of_study

# Named paramstyle: the compiler then leaves '%' alone (no pyformat doubling).
_DIALECT = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]

ITEM_COLUMNS: tuple[str, ...] = (
    "archive_item_id",
    "external_id",
    "collection",
    "acquired_at",
    "cloud_cover",
    "gsd",
    "properties",
    "footprint",
)
"""The columns of :func:`matches_sql`; :func:`study_sql` adds ``coverage`` before
``properties``."""


def session_settings(*, statement_timeout_ms: int) -> list[str]:
    """``SET`` statements for a bulk reader's session: Noctis' name, no JIT, the timeout."""
    return [
        "SET application_name = 'noctis'",
        # JIT compiles calls into PostGIS' C functions it cannot speed up (benchmarks/RESULTS.md).
        "SET jit = off",
        f"SET statement_timeout = {int(statement_timeout_ms)}",
    ]


def _item_columns(*, coverage: bool) -> list[Any]:
    columns: list[Any] = [
        ArchiveItem.id.label("archive_item_id"),
        ArchiveItem.external_id,
        ArchiveItem.collection,
        ArchiveItem.acquired_at,
        _shortest_double(ArchiveItem.cloud_cover, "cloud_cover"),
        _shortest_double(ArchiveItem.gsd, "gsd"),
    ]
    if coverage:
        columns.append(ArchiveLookupItem.coverage)
    columns += [
        # jsonb as text: connectorx reads it as a string column (JSON).
        cast(ArchiveItem.properties, postgresql.TEXT).label("properties"),
        # NULL for a footprint with a non-finite coordinate: no reader or format can use it.
        case((finite(ArchiveItem.footprint), func.ST_AsBinary(ArchiveItem.footprint))).label(
            "footprint"
        ),
    ]
    return columns


def _shortest_double(column: Any, name: str) -> ColumnElement[float]:
    """A REAL column as the double of its shortest decimal: 10.1, not 10.100000381469727; NULL
    for NaN and ±Infinity (no CHECK keeps them out of ``gsd``, and JSON cannot spell them)."""
    value = cast(cast(column, postgresql.TEXT), postgresql.DOUBLE_PRECISION)
    bound: ColumnElement[float] = literal_column("'Infinity'::float8")
    return case((and_(value < bound, value > -bound), value)).label(name)


def matches_sql(criteria: MatchCriteria, *, limit: int | None = None) -> str:
    """The archive items matching ``criteria`` (newest first), as text for connectorx."""
    stmt = (
        select(*_item_columns(coverage=False))
        .where(*match_conditions(criteria))
        .order_by(ArchiveItem.acquired_at.desc(), ArchiveItem.id)
        .limit(limit)
    )
    return render(stmt)


def study_sql(
    *, finder_id: int, dream_id: int, after_item_id: int | None = None, limit: int | None = None
) -> str:
    """A study's lookup rows joined to their items, by archive item id, as text for connectorx.

    ``after_item_id`` and ``limit`` page through a large study (keyset pagination: an item
    appears once per study, so its id orders the rows without gaps or repeats).
    """
    stmt = (
        select(*_item_columns(coverage=True))
        .select_from(ArchiveLookupItem)
        .join(ArchiveItem, ArchiveItem.id == ArchiveLookupItem.archive_item_id)
        .where(*of_study(ArchiveLookupItem, finder_id=finder_id, dream_id=dream_id))
        .order_by(ArchiveLookupItem.archive_item_id)
        .limit(limit)
    )
    if after_item_id is not None:
        stmt = stmt.where(ArchiveLookupItem.archive_item_id > after_item_id)
    return render(stmt)


PLAN_COLUMNS: tuple[str, ...] = (
    "plan_slice_start",
    "plan_slice_end",
    "plan_rank",
    "plan_gain_m2",
    "plan_covered_m2",
)
"""What :func:`plan_sql` adds after :func:`study_sql`'s columns: the slice (first and last UTC
day, ISO text), the scene's rank in its slice's plan, the area (m²) it adds and the area the
plan covers up to it."""


def plan_sql(*, finder_id: int, dream_id: int, per: str) -> str:
    """The scenes of a study's stored coverage plans of slicing ``per`` (``window``, ``month``,
    ``10 days``, …), slice by slice and in plan order, as text for connectorx."""
    day = "YYYY-MM-DD"
    stmt = (
        select(
            *_item_columns(coverage=True),
            func.to_char(CoveragePlan.slice_start, day).label("plan_slice_start"),
            func.to_char(CoveragePlan.slice_end, day).label("plan_slice_end"),
            CoveragePlanItem.rank.label("plan_rank"),
            CoveragePlanItem.gain_m2.label("plan_gain_m2"),
            CoveragePlanItem.covered_m2.label("plan_covered_m2"),
        )
        .select_from(CoveragePlan)
        .join(CoveragePlanItem, CoveragePlanItem.coverage_plan_id == CoveragePlan.id)
        .join(ArchiveLookupItem, ArchiveLookupItem.id == CoveragePlanItem.archive_lookup_item_id)
        .join(ArchiveItem, ArchiveItem.id == ArchiveLookupItem.archive_item_id)
        .where(
            *of_study(CoveragePlan, finder_id=finder_id, dream_id=dream_id),
            CoveragePlan.per == per,
        )
        .order_by(CoveragePlan.slice_start, CoveragePlanItem.rank)
    )
    return render(stmt)


def render(stmt: Select[Any]) -> str:
    """``stmt`` as PostgreSQL text, every bound value replaced by a literal (module doc)."""

    def replace(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter):
            return literal_column(_literal(element))
        return None

    replaced: Select[Any] = visitors.replacement_traverse(stmt, {}, replace)  # type: ignore[assignment]
    # literal_binds: a bound value this missed fails to compile rather than going out unbound.
    return str(replaced.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))


def _literal(bind: BindParameter[Any]) -> str:
    value = bind.effective_value
    if bind.expanding:  # column.in_([...])
        values: Sequence[Any] = value or []
        if not values:
            return "(NULL)"  # IN (NULL) matches nothing, as an empty IN list does
        return "(" + ", ".join(_value(v, bind) for v in values) + ")"
    return _value(value, bind)


def _value(value: Any, bind: BindParameter[Any]) -> str:
    if value is None:
        if isinstance(bind.type, NullType):
            return "NULL"
        return f"CAST(NULL AS {_DIALECT.type_compiler_instance.process(bind.type)})"
    if isinstance(value, WKBElement):
        srid = int(value.srid) if value.srid is not None and value.srid > 0 else 4326
        data = value.data
        wkb = bytes.fromhex(data) if isinstance(data, str) else bytes(data)
        return f"ST_SetSRID(ST_GeomFromEWKB({_hex_bytea(wkb)}), {srid})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"cannot render the non-finite float {value!r} for a bulk read")
        return f"CAST({float(value)!r} AS DOUBLE PRECISION)"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("cannot render a naive datetime for a bulk read: give it a timezone")
        return f"CAST('{value.isoformat()}' AS TIMESTAMP WITH TIME ZONE)"
    if isinstance(value, str):
        return f"convert_from({_hex_bytea(value.encode('utf-8'))}, 'UTF8')"
    if isinstance(value, bytes | bytearray | memoryview):
        return _hex_bytea(bytes(value))
    if isinstance(value, list | tuple) and isinstance(bind.type, ARRAY):  # = ANY(:collections)
        items = ", ".join("NULL" if v is None else _value(v, bind) for v in value)
        return f"CAST(ARRAY[{items}] AS {_DIALECT.type_compiler_instance.process(bind.type)})"
    raise TypeError(f"cannot render a {type(value).__name__} value for a bulk read")


def _hex_bytea(data: bytes) -> str:
    return f"decode('{data.hex()}', 'hex')"
