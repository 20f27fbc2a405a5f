"""``noctis export``: a study's lookup rows as GeoParquet, GeoJSON, a STAC ItemCollection or CSV.

::

    from noctis.exports import export_study
    export_study(7, 3, fmt="parquet", output=Path("study.parquet"))
    export_study(7, 3, fmt="geojson", output=Path("plan.geojson"), plan="window")  # its plan

The rows stream from the database in record batches (:func:`noctis.frames.study_batches`) and
each batch is written before the next is read, so memory stays flat however large the study.
The file is written to a hidden temporary file beside the output and renamed over it only when
complete: a failure (an unknown study, a study with no lookup rows, a database error, an
interrupt) leaves no partial file behind. Needs the ``notebook`` extra.

- **parquet**: GeoParquet 1.1: the footprint as ISO WKB, ``geo`` metadata with the CRS
  (EPSG:4326 as PROJJSON), the geometry types and the file's bbox, and a ``bbox`` covering
  column for readers that filter on it (GeoPandas, DuckDB spatial, GDAL);
- **geojson**: an RFC 7946 FeatureCollection: exterior rings counter-clockwise, antimeridian-
  split footprints stay split (MultiPolygons), each feature's bbox as RFC 7946 section 5.2 says;
- **stac**: a STAC 1.1 ItemCollection of pystac Items (module :mod:`noctis.stac`);
- **csv**: one row per item, the footprint as WKT, ``properties`` as JSON text.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import shapely

from noctis.errors import ExportError
from noctis.frames import check_study_rows, needs, study_batches
from noctis.geometry import rfc7946_bbox
from noctis.notebook import run_sync
from noctis.settings import Settings, get_settings
from noctis.stac import study_items

if TYPE_CHECKING:
    import pyarrow

FORMATS: tuple[str, ...] = ("parquet", "geojson", "stac", "csv")
GEOPARQUET_VERSION = "1.1.0"
Progress = Callable[[int, int], None]
"""Called as ``progress(rows_written, rows_total)`` after each batch."""


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    fmt: str
    rows: int


def export_study(
    finder_id: int,
    dream_id: int,
    *,
    fmt: str,
    output: Path,
    settings: Settings | None = None,
    progress: Progress | None = None,
    plan: str | None = None,
) -> ExportResult:
    """Write the study's lookup rows to ``output`` in ``fmt`` (one of :data:`FORMATS`); with
    ``plan`` (a slicing: ``window``, ``month``, …), the scenes of its stored coverage plans of
    that slicing instead, with their slice and rank (:func:`noctis.frames.read_plan`)."""
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    with needs("noctis export"):  # before anything is written
        import connectorx  # noqa: F401
        import pyarrow  # noqa: F401

        if fmt == "stac":
            import pystac  # noqa: F401
    settings = settings or get_settings()
    output = Path(output).expanduser().absolute()
    with _atomic(output) as handle:
        checked = run_sync(check_study_rows(finder_id, dream_id, settings=settings, plan=plan))
        if not checked.rows:
            raise ExportError(_nothing(checked.label, finder_id, dream_id, plan, checked.rows))
        written = [0]  # what the stream delivered: rows linked since the count are written too
        batches = _counted(study_batches(settings, checked), checked.rows, progress, written)
        batches = _not_empty(batches, _vanished(checked.label, plan, checked.rows))
        WRITERS[fmt](handle, batches)
    return ExportResult(path=output, fmt=fmt, rows=written[0])


def _nothing(label: str, finder_id: int, dream_id: int, plan: str | None, rows: int | None) -> str:
    study = f"--imagery-finder-pk {finder_id} --dream-pk {dream_id}"
    if plan is None:
        return (
            f"{label} has no lookup rows: nothing to export (run the study first: "
            f"noctis run {study})"
        )
    if rows is None:
        return (
            f"{label} has no stored coverage plan per {plan}: make one first "
            f"(noctis plan {study} --per '{plan}')"
        )
    return f"{label} has a coverage plan per {plan} of no scene: nothing to export"


def _vanished(label: str, plan: str | None, rows: int) -> str:
    what = "lookup rows" if plan is None else f"scenes of its coverage plan per {plan}"
    return (
        f"{label} counted {rows:,} {what}, but none could be read: they changed while "
        "exporting (a standing batch removed scenes, or the plan was made again); run it again"
    )


def _not_empty(
    batches: Iterator[pyarrow.RecordBatch], message: str
) -> Iterator[pyarrow.RecordBatch]:
    """The batches, or :class:`ExportError` (``message``) when none has a row: the count said
    there were rows, and a writer must not be left with nothing to write."""
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        yield batch
    if not rows:
        raise ExportError(message)


@contextlib.contextmanager
def _atomic(output: Path) -> Iterator[IO[bytes]]:
    """A temporary file beside ``output``, renamed over it on success, removed on failure."""
    if output.is_dir():
        raise ExportError(f"Cannot write {output}: it is a directory")
    try:
        fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
    except OSError as e:
        raise ExportError(f"Cannot write {output}: {e.strerror or e}") from e
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, output)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _counted(
    batches: Iterator[pyarrow.RecordBatch],
    total: int,
    progress: Progress | None,
    written: list[int],
) -> Iterator[pyarrow.RecordBatch]:
    for batch in batches:
        yield batch
        written[0] += batch.num_rows
        if progress is not None:
            progress(written[0], max(total, written[0]))


# ------------------------------------------------------------------------------ GeoParquet --


def _write_parquet(handle: IO[bytes], batches: Iterator[pyarrow.RecordBatch]) -> None:
    with needs("noctis export"):
        import pyarrow as pa
        import pyarrow.parquet as pq
    writer = None
    bounds = [math.inf, math.inf, -math.inf, -math.inf]
    types: set[int] = set()
    try:
        for batch in batches:
            geoms = shapely.from_wkb(batch.column("footprint").to_numpy(zero_copy_only=False))
            box = shapely.bounds(geoms)  # NaN for a NULL footprint (a non-finite one)
            present = ~np.isnan(box[:, 0])
            if present.any():
                low, high = box[present].min(axis=0), box[present].max(axis=0)
                bounds = [
                    min(bounds[0], float(low[0])),
                    min(bounds[1], float(low[1])),
                    max(bounds[2], float(high[2])),
                    max(bounds[3], float(high[3])),
                ]
            types.update(shapely.get_type_id(geoms[present]).tolist())
            covering = pa.StructArray.from_arrays(
                [pa.array(box[:, i], mask=~present) for i in range(4)],
                names=["xmin", "ymin", "xmax", "ymax"],
                mask=pa.array(~present),
            )
            table = pa.Table.from_batches([batch])
            footprint = table.schema.get_field_index("footprint")
            table = table.set_column(
                footprint, "footprint", table.column(footprint).cast(pa.binary())
            ).append_column("bbox", covering)
            if writer is None:
                # The `geo` metadata (its bbox) is known only at the end: it goes into the
                # footer's key-value metadata on close. With no stored Arrow schema, readers
                # take the schema's metadata from there; the Parquet types round-trip the rest.
                writer = pq.ParquetWriter(
                    handle, table.schema, compression="zstd", store_schema=False
                )
            writer.write_table(table)
        assert writer is not None  # a study with rows has at least one batch
        writer.add_key_value_metadata({"geo": json.dumps(_geo_metadata(bounds, types))})
    finally:
        if writer is not None:
            writer.close()  # on failure too: the temporary file is removed afterwards


_TYPE_NAMES = {3: "Polygon", 6: "MultiPolygon"}


def _geo_metadata(bounds: list[float], type_ids: set[int]) -> dict[str, Any]:
    """GeoParquet's ``geo`` metadata; no ``bbox`` (it is optional) when no footprint is present
    (every row's is NULL): [inf, inf, -inf, -inf] is not JSON."""
    crs = json.loads(resources.files("noctis").joinpath("data/epsg4326.projjson").read_text())
    column: dict[str, Any] = {
        "encoding": "WKB",
        "geometry_types": sorted(_TYPE_NAMES[t] for t in type_ids),
        "crs": crs,
        "edges": "planar",  # the match rule reads edges as straight lines in lon/lat
        "bbox": bounds,
        "covering": {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}},
    }
    if not all(math.isfinite(v) for v in bounds):
        del column["bbox"]
    return {
        "version": GEOPARQUET_VERSION,
        "primary_column": "footprint",
        "columns": {"footprint": column},
    }


# ------------------------------------------------------------------ GeoJSON, STAC and CSV --


def _write_geojson(handle: IO[bytes], batches: Iterator[pyarrow.RecordBatch]) -> None:
    _feature_collection(handle, (f for b in batches for f in _features(b)))


def _features(batch: pyarrow.RecordBatch) -> Iterator[str]:
    geoms = shapely.orient_polygons(
        shapely.from_wkb(batch.column("footprint").to_numpy(zero_copy_only=False))
    )
    geometry_json = shapely.to_geojson(geoms)
    rows = batch.drop_columns(["footprint"]).to_pylist()
    for row, geom, geometry in zip(rows, geoms, geometry_json, strict=True):
        row["acquired_at"] = row["acquired_at"].isoformat().replace("+00:00", "Z")
        row["properties"] = json.loads(row["properties"])
        feature: dict[str, Any] = {"type": "Feature", "id": row["external_id"]}
        if geom is not None:  # a NULL footprint (non-finite): geometry null, no bbox (RFC 7946)
            feature["bbox"] = rfc7946_bbox(geom)
        yield (
            json.dumps(feature, allow_nan=False)[:-1]
            + f', "geometry": {geometry or "null"}, "properties": '
            + (json.dumps(row) + "}")
        )


def _write_stac(handle: IO[bytes], batches: Iterator[pyarrow.RecordBatch]) -> None:
    items = (json.dumps(item.to_dict(include_self_link=False)) for item in study_items(batches))
    _feature_collection(handle, items)


def _feature_collection(handle: IO[bytes], features: Iterator[str]) -> None:
    handle.write(b'{"type": "FeatureCollection", "features": [')
    for i, feature in enumerate(features):
        handle.write(b",\n" if i else b"\n")
        handle.write(feature.encode("utf-8"))
    handle.write(b"\n]}\n")


def footprint_wkt(wkbs: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """WKT that reads back to the same doubles: GEOS writes each coordinate in its shortest
    exact form given enough digits (``rounding_precision=-1``, 16, was 1 ulp off for about one
    longitude in 700)."""
    wkt: npt.NDArray[np.object_] = shapely.to_wkt(shapely.from_wkb(wkbs), rounding_precision=32)
    return wkt


def _write_csv(handle: IO[bytes], batches: Iterator[pyarrow.RecordBatch]) -> None:
    with needs("noctis export"):
        import polars as pl
    for i, batch in enumerate(batches):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        wkt = footprint_wkt(frame.get_column("footprint").to_numpy())
        frame = frame.drop("footprint").with_columns(
            pl.col("acquired_at").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"),
            pl.Series("footprint_wkt", wkt, dtype=pl.String),
        )
        frame.write_csv(handle, include_header=i == 0)


Writer = Callable[[IO[bytes], Iterator["pyarrow.RecordBatch"]], None]
WRITERS: dict[str, Writer] = {
    "parquet": _write_parquet,
    "geojson": _write_geojson,
    "stac": _write_stac,
    "csv": _write_csv,
}
