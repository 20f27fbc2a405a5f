"""Reading STAC deliveries item by item, each with its position in the file (no database).

The format follows the file's suffix:

- ``.json`` / ``.geojson``: a STAC **ItemCollection** (a GeoJSON FeatureCollection; a single
  Item is taken as a collection of one). One JSON document, so it is read whole: deliver large
  sets as ndjson or stac-geoparquet. Positions: ``items.json:features[16]`` (0-based, as in
  JSON Pointer);
- ``.ndjson`` / ``.jsonl`` / ``.geojsonl``: **newline-delimited** Items, one per line, streamed
  (never read whole); blank lines are ignored. Positions: ``items.ndjson:17`` (the line, from 1);
- ``.parquet`` / ``.geoparquet``: **stac-geoparquet** (the ``geoparquet`` extra: pyarrow),
  streamed in record batches; the geometry is WKB, the top-level columns other than the STAC
  fields are the properties. A column has a value in every row, so a null there is taken as an
  absent property (``datetime`` excepted: null means a range, with ``start_datetime``).
  Positions: ``items.parquet:row 17`` (from 1).

Problems of one entry (a line that is not JSON, a truncated last line) come back as entries with
an ``error``, so they are reported and skipped like any bad item. A file that cannot be read at
all (missing, empty, an ItemCollection that is not JSON, not STAC) raises
:class:`~noctis.errors.LoaderError`. JSON is read strictly: ``NaN`` and ``Infinity`` are not JSON.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noctis.errors import LoaderError, MissingExtra

NDJSON = (".ndjson", ".jsonl", ".geojsonl", ".ndgeojson")
COLLECTION = (".json", ".geojson")
PARQUET = (".parquet", ".geoparquet")
STAC_FIELDS = frozenset(
    {"type", "stac_version", "stac_extensions", "id", "geometry", "bbox", "links", "assets",
     "collection"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a file: where it is, the decoded object, or why it could not be decoded."""

    position: str
    item: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Source:
    """A file to load: its entries, in order, and how many there are when known up front."""

    path: Path
    total: int | None
    entries: Iterator[Entry]


def open_source(path: Path, *, parquet_batch: int = 10_000) -> Source:
    """The entries of ``path``; raises :class:`LoaderError` for a file that cannot be read."""
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in NDJSON + COLLECTION + PARQUET:
        raise LoaderError(
            f"{name}: unknown format {suffix or '(no suffix)'!r}: use .json (an ItemCollection), "
            ".ndjson / .jsonl (one item per line) or .parquet (stac-geoparquet)"
        )
    try:
        size = path.stat().st_size
    except OSError as e:
        raise LoaderError(f"{name}: cannot read it: {e.strerror or e}") from e
    if path.is_dir():
        raise LoaderError(f"{name}: is a directory, not a file")
    if size == 0:
        raise LoaderError(f"{name}: the file is empty: no STAC items")
    if suffix in NDJSON:
        return Source(path, _count_lines(path), _ndjson(path))
    if suffix in COLLECTION:
        items = _collection(path)
        return Source(path, len(items), iter(items))
    return _parquet(path, parquet_batch)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a number must be finite)")


def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("arrays or objects nested too deeply to read") from None


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk
    return lines + (0 if last.endswith(b"\n") else 1)


def _ndjson(path: Path) -> Iterator[Entry]:
    seen = False
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            seen = True
            position = f"{path}:{number}"
            try:
                yield Entry(position, _loads(line))
            except UnicodeDecodeError as e:
                yield Entry(position, error=f"not UTF-8 text ({e.reason} at byte {e.start})")
            except ValueError as e:
                cut = "" if line.endswith(b"\n") else " (the last line ends early: truncated?)"
                yield Entry(position, error=f"malformed JSON: {e}{cut}")
    if not seen:
        raise LoaderError(f"{path}: the file holds only blank lines: no STAC items")


def _collection(path: Path) -> list[Entry]:
    data = path.read_bytes()
    try:
        document = _loads(data)
    except UnicodeDecodeError as e:
        raise LoaderError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except json.JSONDecodeError as e:
        at_end = e.pos >= len(data.rstrip()) or e.msg.startswith("Unterminated string")
        cut = " (the file ends early: truncated?)" if at_end else ""
        raise LoaderError(f"{path}: malformed JSON: {e}{cut}") from e
    except ValueError as e:
        raise LoaderError(f"{path}: malformed JSON: {e}") from e
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == "Feature":
        return [Entry(str(path), document)]
    features = document.get("features") if isinstance(document, dict) else None
    if kind != "FeatureCollection" or not isinstance(features, list):
        raise LoaderError(
            f"{path}: not a STAC ItemCollection (a GeoJSON FeatureCollection with a features "
            "array) nor a STAC Item"
        )
    if not features:
        raise LoaderError(f"{path}: the ItemCollection has no features: no STAC items")
    return [Entry(f"{path}:features[{i}]", item) for i, item in enumerate(features)]


def _parquet(path: Path, batch_size: int) -> Source:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise MissingExtra(f"Loading {path.name}", "geoparquet", e.name or "pyarrow") from e
    try:
        reader = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError ... for a bad file
        raise LoaderError(f"{path}: not a readable Parquet file: {e}") from e
    columns = set(reader.schema_arrow.names)
    for required in ("id", "geometry"):
        if required not in columns:
            raise LoaderError(f"{path}: not stac-geoparquet: it has no {required!r} column")
    if reader.metadata.num_rows == 0:
        raise LoaderError(f"{path}: the file has no rows: no STAC items")
    return Source(path, reader.metadata.num_rows, _rows(path, reader, batch_size))


def _rows(path: Path, reader: Any, batch_size: int) -> Iterator[Entry]:
    number = 0
    with contextlib.closing(reader):
        try:
            for batch in reader.iter_batches(batch_size=batch_size):
                for row in _microseconds(batch).to_pylist():
                    number += 1
                    yield Entry(f"{path}:row {number}", _item(row))
        except (OSError, ValueError) as e:  # a truncated or corrupt page (ArrowInvalid)
            raise LoaderError(f"{path}: unreadable after row {number}: {e}") from e


def _microseconds(batch: Any) -> Any:
    """The batch with nanosecond timestamps cut to microseconds, as PostgreSQL keeps them:
    Python's datetime holds no nanoseconds, and pyarrow hands them over only through pandas,
    when it is installed (a file loaded the same either way)."""
    import pyarrow as pa

    schema = batch.schema
    for i, field in enumerate(schema):
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            micro = pa.timestamp("us", tz=field.type.tz)
            batch = batch.set_column(i, field.name, batch.column(i).cast(micro, safe=False))
    return batch


def _item(row: dict[str, Any]) -> dict[str, Any]:
    """A stac-geoparquet row as a STAC Item: the STAC fields at the top, the rest properties."""
    item = {k: v for k, v in row.items() if k in STAC_FIELDS}
    item.setdefault("type", "Feature")
    properties = row.get("properties")
    item["properties"] = dict(properties) if isinstance(properties, dict) else {}
    item["properties"].update(
        (k, v)
        for k, v in row.items()
        if k not in STAC_FIELDS and k != "properties" and (v is not None or k == "datetime")
    )
    return item
