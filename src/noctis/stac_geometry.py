"""A STAC item's geometry -> an archive footprint, or the reason it cannot be one (pure).

The rules (``noctis archive load``):

- the geometry is a GeoJSON **Polygon or MultiPolygon** (stac-geoparquet: its WKB). A null
  geometry, a Point, a LineString, a GeometryCollection ... is refused: the match rule and the
  coverage need an area, and Noctis never invents one (no buffering of points);
- positions are [lon, lat] (a third value, the height, is dropped), finite, within
  [-180, 180] x [-90, 90]; each ring is closed and has at least 4 positions; at most
  :data:`MAX_VERTICES` positions in all;
- **the antimeridian**: an edge that spans more than 180° of longitude is taken to cross the
  antimeridian (the shorter way round), and the footprint is split at ±180 into a MultiPolygon
  as RFC 7946 (section 3.1.9) says, by the ``antimeridian`` library, with straight edges in
  lon/lat as RFC 7946 (section 3.1.1) has them. A footprint that really spans more than 180°
  needs a vertex at least every 180° of longitude;
- the result must be valid (OGC): a self-intersection, a spike ... is refused with GEOS' reason.
"""

from __future__ import annotations

import warnings
from typing import Any

import antimeridian
import numpy as np
import numpy.typing as npt
import shapely

from noctis.geometry import LAT_MAX, LON_MAX

MAX_VERTICES = 100_000
POLYGONAL = ("Polygon", "MultiPolygon")
OTHER_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "GeometryCollection")


class BadItem(ValueError):
    """A STAC item that cannot become an archive row; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def footprint(geometry: Any) -> shapely.Geometry:
    """The footprint of a STAC geometry: a valid Polygon or MultiPolygon, split at ±180."""
    if geometry is None:
        raise BadItem("no geometry (null): an archive item needs a footprint")
    if isinstance(geometry, bytes):  # stac-geoparquet
        shape = shapely.force_2d(_from_wkb(geometry))
        rings = [shapely.get_coordinates(r) for r in shapely.get_rings(shapely.get_parts(shape))]
    elif isinstance(geometry, dict):
        shape, rings = _from_geojson(geometry)
    else:
        raise BadItem(f"geometry must be a GeoJSON object, not {type(geometry).__name__}")
    if not rings or shapely.is_empty(shape):
        raise BadItem("empty geometry: an archive item needs a footprint")
    xy = rings[0] if len(rings) == 1 else np.concatenate(rings)
    _check_positions(xy)
    if any(_crosses(ring[:, 0]) for ring in rings):
        shape = _split(shape)
    reason = shapely.is_valid_reason(shape)
    if reason != "Valid Geometry":
        raise BadItem(f"invalid geometry: {reason}")
    return shape


def _from_wkb(data: bytes) -> shapely.Geometry:
    try:
        shape = shapely.from_wkb(data)
    except shapely.errors.GEOSException as e:
        raise BadItem(f"malformed geometry (WKB): {e}") from None
    kind = shapely.get_type_id(shape)
    name = shape.geom_type if shape is not None else "null"
    if shape is None or kind not in (3, 6):
        raise BadItem(f"a {name} geometry: a footprint must be a Polygon or MultiPolygon")
    return shape


Rings = list[npt.NDArray[np.float64]]


def _from_geojson(geometry: dict[str, Any]) -> tuple[shapely.Geometry, Rings]:
    kind = geometry.get("type")
    if kind in OTHER_TYPES:
        raise BadItem(f"a {kind} geometry: a footprint must be a Polygon or MultiPolygon")
    if kind not in POLYGONAL:
        raise BadItem(f"unknown geometry type {kind!r}: a footprint is a Polygon or MultiPolygon")
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list):
        raise BadItem(f"malformed {kind}: its coordinates must be an array")
    if kind == "Polygon":
        rings = [_ring(ring, kind) for ring in coordinates]
        shape = shapely.polygons(rings[0], holes=rings[1:] or None) if rings else None
        return shape or shapely.Polygon(), rings
    if not all(isinstance(part, list) for part in coordinates):
        raise BadItem("malformed MultiPolygon: each part must be an array of rings")
    parts = [[_ring(ring, kind) for ring in part] for part in coordinates]
    polygons = [shapely.polygons(p[0], holes=p[1:] or None) for p in parts if p]
    return shapely.multipolygons(polygons), [ring for part in parts for ring in part]


def _ring(ring: Any, kind: str) -> npt.NDArray[np.float64]:
    malformed = f"malformed {kind}: a ring must be an array of [lon, lat] positions"
    if not isinstance(ring, list):
        raise BadItem(malformed)
    try:
        array = np.asarray(ring)
    except ValueError:  # ragged: positions of different lengths
        raise BadItem(malformed) from None
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise BadItem(malformed)
    if array.dtype.kind not in "iuf" or any(type(v) is bool for p in ring for v in p):
        # numpy reads JSON's true as 1 beside numbers
        raise BadItem(f"malformed {kind}: coordinates must be numbers")
    array = array[:, :2].astype(np.float64)
    if len(array) < 4:
        raise BadItem(
            f"malformed {kind}: a ring of {len(array)} positions (a linear ring needs 4 or more)"
        )
    if not np.array_equal(array[0], array[-1]):
        raise BadItem(f"malformed {kind}: a ring is not closed (first and last positions differ)")
    return array


def _check_positions(xy: npt.NDArray[np.float64]) -> None:
    if len(xy) > MAX_VERTICES:
        raise BadItem(f"a footprint of {len(xy):,} positions: at most {MAX_VERTICES:,}")
    if not np.isfinite(xy).all():
        raise BadItem("a non-finite coordinate (NaN, Infinity, or too large for a double)")
    lon, lat = np.abs(xy[:, 0]), np.abs(xy[:, 1])
    if lon.max() > LON_MAX:
        worst = xy[int(np.argmax(lon)), 0]
        raise BadItem(
            f"longitude {worst:g} is out of range: [lon, lat] in EPSG:4326 need -180..180"
        )
    if lat.max() > LAT_MAX:
        worst = xy[int(np.argmax(lat)), 1]
        raise BadItem(f"latitude {worst:g} is out of range: [lon, lat] in EPSG:4326 need -90..90")


def _crosses(x: npt.NDArray[np.float64]) -> bool:
    """Whether an edge spans more than 180° of longitude (edges along ±180 itself do not)."""
    x1, x2 = x[:-1], x[1:]
    wide = np.abs(x2 - x1) > LON_MAX
    return bool(wide.any()) and bool(
        (wide & ~((np.abs(x1) == LON_MAX) & (np.abs(x2) == LON_MAX))).any()
    )


def _split(shape: shapely.Geometry) -> shapely.Geometry:
    """The split at ±180 (:func:`_fix`); a ring that crosses the antimeridian around a pole
    and, by its winding, would enclose more than a hemisphere (everything but the polar cap:
    the library rewinds only rings that do not cross) is read the other way round. No
    scene covers more than half the Earth."""
    fixed = _fix(shape)
    if _sphere_share(fixed) <= 0.5:
        return fixed
    other = _fix(shapely.reverse(shape))
    return other if _sphere_share(other) < _sphere_share(fixed) else fixed


def _sphere_share(shape: shapely.Geometry) -> float:
    """Share of the sphere's area, edges straight in lon/lat (cylindrical equal-area)."""
    sine = shapely.transform(
        shape, lambda xy: np.column_stack([xy[:, 0], np.sin(np.radians(xy[:, 1]))])
    )
    return float(shapely.area(sine)) / 720.0


def _fix(shape: shapely.Geometry) -> shapely.Geometry:
    """The ``antimeridian`` library's split, straight edges in lon/lat (RFC 7946)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a clockwise ring is rewound, as GeoJSON wants
            if shape.geom_type == "Polygon":
                fixed = antimeridian.fix_polygon(shape, fix_winding=True, great_circle=False)
            else:
                fixed = antimeridian.fix_multi_polygon(shape, fix_winding=True, great_circle=False)
    except (ValueError, AssertionError, shapely.errors.GEOSException) as e:
        raise BadItem(f"invalid geometry: it cannot be split at the antimeridian ({e})") from None
    return fixed
