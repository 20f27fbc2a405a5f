"""STAC items and files for the loader's tests: one good item to spoil, files in each format."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SQUARE = [[[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 49.0], [2.0, 48.0]]]
ACROSS = [[[179.0, -1.0], [-179.0, -1.0], [-179.0, 1.0], [179.0, 1.0], [179.0, -1.0]]]


def item(
    id_: str = "S2A_T31UDQ_20240501",
    *,
    coordinates: Any = None,
    collection: str = "sentinel-2-l2a",
    **properties: Any,
) -> dict[str, Any]:
    """A good STAC 1.1 item over Paris; ``properties`` override or add (None keeps a null)."""
    props: dict[str, Any] = {
        "datetime": "2024-05-01T10:56:21.024Z",
        "eo:cloud_cover": 12.5,
        "gsd": 10,
        "platform": "sentinel-2a",
    }
    props.update(properties)
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": id_,
        "collection": collection,
        "geometry": {"type": "Polygon", "coordinates": coordinates or copy.deepcopy(SQUARE)},
        "bbox": [2.0, 48.0, 3.0, 49.0],
        "properties": props,
        "assets": {},
        "links": [],
    }


def items(n: int, prefix: str = "S2A") -> list[dict[str, Any]]:
    return [item(f"{prefix}_{i:06d}", platform=f"p{i % 3}") for i in range(n)]


def write_ndjson(path: Path, objects: Iterable[Any]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))
    return path


def write_collection(path: Path, objects: Iterable[Any]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(objects)}))
    return path


def write_parquet(path: Path, objects: Iterable[dict[str, Any]]) -> Path:
    """stac-geoparquet as its writers lay it out: WKB geometry, the properties as columns."""
    from datetime import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    rows = []
    for o in objects:
        row = {k: v for k, v in o.items() if k not in ("properties", "geometry", "assets", "links")}
        row["geometry"] = shapely.to_wkb(shapely.from_geojson(json.dumps(o["geometry"])))
        props = dict(o["properties"])
        for key in ("datetime", "start_datetime"):
            if isinstance(props.get(key), str):
                props[key] = datetime.fromisoformat(props[key])
        row.update(props)
        rows.append(row)
    keys = list(dict.fromkeys(k for row in rows for k in row))  # every column, in every row
    pq.write_table(pa.Table.from_pylist([{k: row.get(k) for k in keys} for row in rows]), path)
    return path
