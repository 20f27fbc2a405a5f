"""One STAC Item -> one ``archive_item`` row, or the reason it cannot be one (pure: no database).

The mapping (``noctis archive load``):

- ``external_id`` = the item's ``id``: a string of 1 .. 1024 characters, no control characters;
- ``collection`` = the item's ``collection``: required (the column is NOT NULL), and one of the
  allowed collections when the operator restricts them (``--collection``);
- ``acquired_at`` = ``properties.datetime``; when it is null (a STAC item with a range),
  ``properties.start_datetime``. Either must be RFC 3339 with a time zone (``Z`` or ``+hh:mm``);
  it is stored in UTC;
- ``cloud_cover`` = ``properties["eo:cloud_cover"]`` (a number in 0..100, or absent / null);
- ``gsd`` = ``properties.gsd`` (a positive number, or absent / null);
- ``properties`` = the item's other properties (``datetime``, ``eo:cloud_cover`` and ``gsd`` live
  in their columns; ``start_datetime`` and ``end_datetime`` stay here), as JSON;
- ``footprint`` = the geometry (:mod:`noctis.stac_geometry`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import shapely

from noctis.stac_geometry import BadItem, footprint

MAX_ID_LENGTH = 1024
MAX_COLLECTION_LENGTH = 256
REAL_MAX = 3.4e38  # the largest float4 (cloud_cover and gsd are PostgreSQL REAL)
COLUMNS_FROM_PROPERTIES = ("datetime", "eo:cloud_cover", "gsd")

__all__ = ["BadItem", "SceneRow", "item_id", "parse_item"]


@dataclass(frozen=True, slots=True)
class SceneRow:
    """An ``archive_item`` row from a checked STAC item; the footprint in EPSG:4326."""

    external_id: str
    collection: str
    footprint: shapely.Geometry
    acquired_at: datetime
    cloud_cover: float | None
    gsd: float | None
    properties: str


def item_id(item: Any) -> str | None:
    """The item's id for a report, when it has a usable one (shortened, control chars escaped)."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        return None
    text: str = item["id"]
    shown = text if len(text) <= 80 else f"{text[:77]}..."
    return shown if shown.isprintable() else repr(shown)


def parse_item(item: Any, *, collections: frozenset[str] | None = None) -> SceneRow:
    """The row for ``item`` (a decoded STAC Item); raises :class:`BadItem` with the reason."""
    if not isinstance(item, dict):
        raise BadItem(f"not a STAC item: a JSON {_kind(item)}, not an object (a GeoJSON Feature)")
    kind = item.get("type")
    if kind != "Feature":
        hint = ": one item per line, not a collection" if kind == "FeatureCollection" else ""
        raise BadItem(f"not a Feature (type {kind!r}){hint}")
    external_id = _text(item, "id", MAX_ID_LENGTH)
    collection = _text(item, "collection", MAX_COLLECTION_LENGTH)
    if collections is not None and collection not in collections:
        allowed = ", ".join(sorted(collections))
        raise BadItem(f"collection {collection!r} is not allowed (--collection: {allowed})")
    properties = item.get("properties")
    if not isinstance(properties, dict):
        what = "missing properties" if properties is None else "properties"
        raise BadItem(f"{what}: a STAC item needs a properties object (with its datetime)")
    acquired_at = _acquired_at(properties)
    cloud_cover = _number(properties, "eo:cloud_cover", low=0.0, high=100.0)
    gsd = _number(properties, "gsd", low=0.0, high=REAL_MAX, low_open=True)
    if "geometry" not in item:
        raise BadItem("no geometry: an archive item needs a footprint")
    geometry = footprint(item["geometry"])
    rest = {k: v for k, v in properties.items() if k not in COLUMNS_FROM_PROPERTIES}
    return SceneRow(
        external_id=external_id,
        collection=collection,
        footprint=geometry,
        acquired_at=acquired_at,
        cloud_cover=cloud_cover,
        gsd=gsd,
        properties=_json(rest),
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _text(item: dict[str, Any], key: str, longest: int) -> str:
    value = item.get(key)
    if value is None:
        raise BadItem(f"missing {key}")
    if not isinstance(value, str):
        raise BadItem(f"{key} must be a string, not a {_kind(value)} ({_short(value)})")
    if not value.strip():
        raise BadItem(f"empty {key}")
    if len(value) > longest:
        raise BadItem(f"{key} of {len(value):,} characters: at most {longest:,}")
    if not value.isprintable():
        raise BadItem(f"{key} {value[:80]!r} holds a control character")
    return value


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _acquired_at(properties: dict[str, Any]) -> datetime:
    if "datetime" not in properties:
        raise BadItem(
            "missing datetime (properties.datetime; null with start_datetime for a range)"
        )
    bounds = {
        key: _timestamp(properties[key], key)
        for key in ("start_datetime", "end_datetime")
        if properties.get(key) is not None
    }  # kept in properties (and the STAC export): checked as datetime is
    if len(bounds) == 2 and bounds["start_datetime"] > bounds["end_datetime"]:
        raise BadItem("start_datetime is after end_datetime")
    if properties["datetime"] is not None:
        return _timestamp(properties["datetime"], "datetime")
    if "start_datetime" not in bounds:
        raise BadItem("datetime is null and there is no start_datetime")
    return bounds["start_datetime"]


def _timestamp(value: Any, key: str) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.upper())  # RFC 3339 allows 't' and 'z'
        except ValueError:
            raise BadItem(f"unparseable {key} {_short(value)}: RFC 3339 is needed") from None
    elif isinstance(value, datetime):  # stac-geoparquet: a timestamp column
        parsed = value
    else:
        raise BadItem(f"{key} must be an RFC 3339 string, not a {_kind(value)} ({_short(value)})")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise BadItem(f"{key} {_short(str(value))} has no time zone: add Z or an offset (+hh:mm)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise BadItem(f"{key} {_short(str(value))} is out of range") from None


def _number(
    properties: dict[str, Any],
    key: str,
    *,
    low: float,
    high: float,
    low_open: bool = False,
) -> float | None:
    value = properties.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise BadItem(f"{key} must be a number, not a {_kind(value)} ({_short(value)})")
    number = float(value)
    if not math.isfinite(number):
        raise BadItem(f"{key} is not a finite number ({value})")
    if number < low or number > high or (low_open and number == low):
        side = f"({low:g}" if low_open else f"[{low:g}"
        bound = f"{side}, {high:g}]"
        raise BadItem(f"{key} of {number:g} is out of range: it must be within {bound}")
    return number


def _json(properties: dict[str, Any]) -> str:
    try:
        text = json.dumps(properties, allow_nan=False, default=_json_default, ensure_ascii=False)
    except ValueError as e:  # NaN / Infinity, which JSON (and jsonb) cannot hold
        raise BadItem(f"properties hold a non-finite number: {e}") from None
    except TypeError as e:
        raise BadItem(f"properties hold a value JSON cannot represent: {e}") from None
    except RecursionError:
        raise BadItem("properties nested too deeply to store") from None
    if "\\u0000" in text:
        raise BadItem("properties hold a NUL character (\\u0000), which jsonb cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate (JSON "\\ud800": half of an emoji)
        bad = text[max(0, e.start - 20) : e.end + 20]
        raise BadItem(
            f"properties hold a string that is not valid Unicode (a lone surrogate, "
            f"U+{ord(text[e.start]):04X}, in {bad!r}), which jsonb cannot store"
        ) from None
    return text


def _json_default(value: Any) -> Any:
    """stac-geoparquet columns decode to timestamps, decimals and bytes: give them JSON forms."""
    if isinstance(value, datetime) and value.utcoffset() is not None and not value.utcoffset():
        return value.isoformat().replace("+00:00", "Z")  # as STAC writes UTC (RFC 3339)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
