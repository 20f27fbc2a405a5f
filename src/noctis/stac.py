"""A study's rows as STAC 1.1 Items (pystac), for ``noctis export --format stac``.

Each lookup row becomes one Item:

- ``id``: the archive item's ``external_id``; ``collection``: its collection;
- ``geometry``: the footprint as RFC 7946 GeoJSON (antimeridian-split footprints stay split),
  ``bbox`` as RFC 7946 writes it (west > east across the antimeridian);
- ``properties``: the item's stored properties, then ``datetime`` (``acquired_at``, UTC),
  ``eo:cloud_cover`` (the eo extension, when known), ``gsd`` (when known and positive, as the
  STAC schema requires), and Noctis' own fields under the ``noctis:`` prefix:
  ``noctis:coverage`` (the share of the AOI the item covers; null for a point AOI) and
  ``noctis:archive_item_id``; a plan's scenes (``noctis export --plan``) add
  ``noctis:plan_slice_start``, ``noctis:plan_slice_end``, ``noctis:plan_rank``,
  ``noctis:plan_gain_m2`` and ``noctis:plan_covered_m2``.

The STAC schema requires a ``rel="collection"`` link wherever ``collection`` is set: each Item
links to ``collections/<collection>`` relative to the file, as a STAC API lays them out. Noctis
writes no Collection documents; resolve the link against your catalogue.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import shapely

from noctis.frames import needs
from noctis.geometry import rfc7946_bbox

if TYPE_CHECKING:
    import pyarrow
    import pystac

EO_EXTENSION = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
NAMESPACE = "noctis"


def study_items(batches: Iterator[pyarrow.RecordBatch]) -> Iterator[pystac.Item]:
    """One pystac Item per row of the batches of :func:`noctis.frames.study_batches`."""
    with needs("noctis export --format stac"):
        import pystac as stac
    for batch in batches:
        geoms = shapely.orient_polygons(
            shapely.from_wkb(batch.column("footprint").to_numpy(zero_copy_only=False))
        )
        geometry_json = shapely.to_geojson(geoms)
        rows = batch.drop_columns(["footprint"]).to_pylist()
        for row, geom, geometry in zip(rows, geoms, geometry_json, strict=True):
            if geom is None:  # a NULL footprint (non-finite): STAC's null geometry, no bbox
                yield _item(stac, row, None, None)
            else:
                yield _item(stac, row, json.loads(geometry), rfc7946_bbox(geom))


def _item(
    stac: Any, row: dict[str, Any], geometry: dict[str, Any] | None, bbox: list[float] | None
) -> pystac.Item:
    acquired_at: datetime = row["acquired_at"]
    properties: dict[str, Any] = json.loads(row["properties"])
    if row["cloud_cover"] is not None:
        properties["eo:cloud_cover"] = row["cloud_cover"]
    if row["gsd"] is not None and row["gsd"] > 0:
        properties["gsd"] = row["gsd"]
    properties[f"{NAMESPACE}:coverage"] = row["coverage"]
    properties[f"{NAMESPACE}:archive_item_id"] = row["archive_item_id"]
    for key in (k for k in row if k.startswith("plan_")):  # noctis export --plan
        properties[f"{NAMESPACE}:{key}"] = row[key]
    properties.pop("datetime", None)  # the item's datetime is acquired_at
    collection: str = row["collection"]
    item: pystac.Item = stac.Item(
        id=row["external_id"],
        geometry=geometry,
        bbox=bbox,
        datetime=acquired_at,
        properties=properties,
        stac_extensions=[EO_EXTENSION] if "eo:cloud_cover" in properties else [],
        collection=collection,
    )
    item.add_link(
        stac.Link(
            rel="collection",
            target=f"collections/{quote(collection, safe='')}",
            media_type="application/json",
            title=collection,
        )
    )
    return item
