"""Spheroidal areas in the plane, and the pieces a plan is made of.

**The plane.** Plans are computed with shapely (GEOS) in the Lambert cylindrical equal-area
projection of the WGS 84 ellipsoid (``+proj=cea +datum=WGS84``, the projection of
:mod:`noctis.repositories.geo` for wide shapes), written out here so that no projection library
is needed: ``x = a λ``, ``y = a q(φ) / 2``, with ``q`` the authalic latitude function. The
projection is equal-area, so a polygon's planar area in it is its area on the spheroid.
Longitude and latitude map each to one axis, monotonically: parallels and meridians stay
straight, so the boxes and grid tiles of an archive keep their shape exactly. An edge that is
straight in lon/lat but runs both north-south and east-west becomes a slight curve that the
projected polygon replaces by its chord; edges longer than :data:`SEGMENT_DEGREES` are first cut
into pieces of at most that length, which bounds that error below 0.001% of the area.

Areas are therefore those of the match rule's shapes (edges straight in lon/lat) on the
spheroid, as a lookup row's ``coverage`` reads them too (:mod:`noctis.repositories.geo`, the
same projection and chords, in SQL).

**Pieces.** Scenes that share a footprint (a tile revisited) share a piece: footprints are
grouped by their exact WKB bytes first, so everything below runs once per distinct footprint.
A footprint is repaired when invalid (GEOS' MakeValid, its polygonal part, as
:func:`noctis.repositories.geo.clean_footprint` does), then projected. Its piece is the
footprint clipped to the AOI: a footprint inside the AOI is its own piece and one covering the
AOI has the AOI as its piece (two prepared predicates), the others are clipped only when the
greedy first looks at them (most never are).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

WGS84_A = 6_378_137.0
WGS84_F = 1 / 298.257223563
_E2 = WGS84_F * (2 - WGS84_F)
_E = math.sqrt(_E2)
SEGMENT_DEGREES = 0.25
"""Longest edge (in degrees of lon/lat) projected as a chord (module doc)."""
SIEVE = 32
"""How many of the largest footprints :func:`union_area` unions first (doubling each round)."""
CHUNK = 4096
"""Footprints read and projected at a time (:meth:`Pieces.of`)."""

Objects = npt.NDArray[np.object_]
Floats = npt.NDArray[np.float64]


def _authalic_q(sin_phi: Floats) -> Floats:
    e_sin = _E * sin_phi
    return (1 - _E2) * (sin_phi / (1 - e_sin**2) - np.log((1 - e_sin) / (1 + e_sin)) / (2 * _E))


def _to_plane(coords: Floats) -> Floats:
    lon, lat = np.radians(coords[:, 0]), np.radians(coords[:, 1])
    return np.column_stack([WGS84_A * lon, WGS84_A * _authalic_q(np.sin(lat)) / 2])


def equal_area(geoms: Objects | BaseGeometry) -> Objects:
    """``geoms`` (lon/lat) in the equal-area plane (metres); long edges are cut first."""
    geoms = np.asarray(geoms, dtype=object).reshape(-1)
    box = shapely.bounds(geoms)
    long = (box[:, 2] - box[:, 0] > SEGMENT_DEGREES) | (box[:, 3] - box[:, 1] > SEGMENT_DEGREES)
    geoms = geoms.copy()
    geoms[long] = shapely.segmentize(geoms[long], SEGMENT_DEGREES)
    return shapely.transform(geoms, _to_plane)  # type: ignore[no-any-return]


def spheroid_area(geom: BaseGeometry) -> float:
    """Area in m² on the WGS 84 spheroid of ``geom`` read as planar lon/lat."""
    return float(shapely.area(equal_area(geom))[0])


def polygonal(geoms: Objects) -> Objects:
    """The polygonal part of each geometry (an overlay may add lines and points where shapes
    touch); an empty polygon where there is none."""
    out = np.asarray(geoms, dtype=object).copy()
    kind = shapely.get_type_id(out)
    for i in np.flatnonzero((kind != 3) & (kind != 6)):
        parts = shapely.get_parts(out[i])
        parts = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
        out[i] = shapely.union_all(parts) if len(parts) else shapely.Polygon()
    return out


@dataclass(frozen=True, eq=False)
class Pieces:
    """The distinct footprints of some scenes over the AOI, projected (module doc).

    ``group[i]`` is the distinct footprint of scene ``i``. ``shapes[g]`` is footprint ``g``
    clipped to the AOI where ``exact[g]`` (it lies inside the AOI, or covers it and is the AOI),
    else the whole footprint, to be clipped with :meth:`clip` when first needed (the greedy
    clips only what it looks at). ``areas[g]`` is the area (m²) of ``shapes[g]``: exact where
    ``exact[g]``, an upper bound elsewhere.
    """

    group: npt.NDArray[np.intp]
    shapes: Objects
    areas: Floats
    exact: npt.NDArray[np.bool_]
    whole: npt.NDArray[np.bool_]
    """Which footprints cover the whole AOI (their ``shapes`` are the AOI)."""
    footprints: Objects
    """The footprints in the plane, whole (``shapes`` before any is replaced by the AOI)."""
    aoi: BaseGeometry
    """The AOI in the plane (prepared)."""

    @classmethod
    def of(cls, footprints: Sequence[bytes], aoi: BaseGeometry) -> Pieces:
        """Pieces of the footprints (WKB, lon/lat, valid) over ``aoi`` (lon/lat, valid)."""
        index: dict[bytes, int] = {}
        group = np.fromiter(
            (index.setdefault(bytes(f), len(index)) for f in footprints),
            dtype=np.intp,
            count=len(footprints),
        )
        plane_aoi = equal_area(aoi)[0]
        shapely.prepare(plane_aoi)
        shapes = _projected(list(index))
        whole_footprints = shapes.copy()
        exact = shapely.covers(plane_aoi, shapes)
        spans = _spans(shapely.bounds(shapes), shapely.bounds(plane_aoi)) & ~exact
        whole = np.zeros(len(shapes), dtype=bool)
        whole[np.flatnonzero(spans)[shapely.covers(shapes[spans], plane_aoi)]] = True
        shapes[whole] = plane_aoi
        exact |= whole
        areas = shapely.area(shapes).astype(np.float64)
        return cls(group, shapes, areas, exact, whole, whole_footprints, plane_aoi)

    def union_area(self) -> float:
        """Area (m²) of the union of all the pieces: what the scenes together cover."""
        if self.whole.any():
            return float(shapely.area(self.aoi))
        return union_area(self.footprints, self.aoi)

    def clip(self, shape: BaseGeometry) -> BaseGeometry:
        """``shape ∩ AOI``, polygonal."""
        piece: BaseGeometry = polygonal(np.array([shapely.intersection(shape, self.aoi)]))[0]
        return piece


def _projected(wkbs: list[bytes]) -> Objects:
    """The footprints (WKB, lon/lat), repaired and in the plane, :data:`CHUNK` at a time: the
    lon/lat geometries of one chunk at most live beside the projected ones."""
    out = np.empty(len(wkbs), dtype=object)
    for at in range(0, len(wkbs), CHUNK):
        lonlat = _valid(shapely.from_wkb(np.array(wkbs[at : at + CHUNK], dtype=object)))
        out[at : at + CHUNK] = _valid(equal_area(lonlat))  # a chord may touch its neighbour
    return out


def _valid(geoms: Objects) -> Objects:
    """Invalid geometries repaired as :func:`noctis.repositories.geo.clean_footprint` does:
    GEOS' MakeValid, its polygonal part."""
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms[invalid] = polygonal(shapely.make_valid(geoms[invalid]))
    return geoms


def _spans(boxes: Floats, box: Floats) -> npt.NDArray[np.bool_]:
    """Which of ``boxes`` contain ``box``."""
    return (  # type: ignore[no-any-return]
        (boxes[:, 0] <= box[0])
        & (boxes[:, 1] <= box[1])
        & (boxes[:, 2] >= box[2])
        & (boxes[:, 3] >= box[3])
    )


def union_area(shapes: Objects, aoi: BaseGeometry) -> float:
    """Area (m²) of the union of ``shapes`` (projected footprints) within ``aoi`` (projected):
    the footprints are unioned, and the union clipped once.

    A footprint that the union of others covers adds nothing to it, so the union is built as a
    sieve, largest footprints first: the :data:`SIEVE` largest are unioned, every footprint
    that union covers (a prepared predicate) is left out, then the next largest of those left
    (twice as many each round) are added, until none is left. Exact: only footprints inside
    the union so far are left out. In a study most scenes lie inside the union of a few tiles
    (Sentinel-2 revisits, commercial scenes inside them), so few footprints reach a union:
    26,287 distinct footprints of a 250 km region over 5 years at 5M items, 298 ms as one union
    of those no single large footprint covers (the form before), 53 ms so
    (``benchmarks/plan_union.py``).
    """
    shapes = shapes[~shapely.is_empty(shapes)]
    if not len(shapes):
        return 0.0
    left = shapes[np.argsort(-shapely.area(shapes), kind="stable")]
    union: BaseGeometry | None = None
    take = SIEVE
    while len(left):
        head, left = left[:take], left[take:]
        union = shapely.union_all(head if union is None else np.append(head, union))
        if len(left):
            shapely.prepare(union)
            left = left[~shapely.covers(union, left)]
        take *= 2
    return float(shapely.area(shapely.intersection(union, aoi)))
