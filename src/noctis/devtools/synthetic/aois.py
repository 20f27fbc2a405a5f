"""Areas of interest around the synthetic archive's cities, for demos and benchmarks.

Every helper returns a valid shapely geometry in lon/lat (SRID 4326), split at
the antimeridian into a MultiPolygon where it crosses it, as footprints are.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from noctis.devtools.synthetic import seeds
from noctis.devtools.synthetic.cities import City, city
from noctis.devtools.synthetic.geometry import DECIMALS, KM_PER_DEGREE, SRID, wrap_antimeridian

__all__ = ["box_aoi", "city_aoi", "country_aoi", "point_aoi", "region_aoi"]


def _place(where: str | City) -> City:
    return where if isinstance(where, City) else city(where)


def point_aoi(where: str | City) -> shapely.Point:
    """The city's centre as a Point (SRID 4326)."""
    c = _place(where)
    return shapely.set_srid(shapely.Point(c.lon, c.lat), SRID)


def box_aoi(lon: float, lat: float, *, km: float) -> shapely.Polygon | shapely.MultiPolygon:
    """A ``km`` by ``km`` square centred on (lon, lat), split at the antimeridian if needed."""
    if km <= 0:
        raise ValueError(f"km must be > 0, got {km}")
    half_lat = km / 2 / KM_PER_DEGREE
    if abs(lat) + half_lat >= 90.0:
        raise ValueError(f"a {km} km square at latitude {lat} reaches a pole")
    half_lon = km / 2 / (KM_PER_DEGREE * math.cos(math.radians(lat)))
    square = shapely.box(
        round(lon - half_lon, DECIMALS),
        round(lat - half_lat, DECIMALS),
        round(lon + half_lon, DECIMALS),
        round(lat + half_lat, DECIMALS),
    )
    return wrap_antimeridian(np.array([square], dtype=object))[0]


def city_aoi(where: str | City, *, km: float = 20.0) -> shapely.Polygon | shapely.MultiPolygon:
    """A ``km`` square on the city: a typical city study."""
    c = _place(where)
    return box_aoi(c.lon, c.lat, km=km)


def region_aoi(where: str | City, *, km: float = 250.0) -> shapely.Polygon | shapely.MultiPolygon:
    """A ``km`` square on the city: a regional study."""
    c = _place(where)
    return box_aoi(c.lon, c.lat, km=km)


def country_aoi(
    lon: float, lat: float, *, km: float = 1000.0, vertices: int = 500, seed: int = 0
) -> shapely.Polygon | shapely.MultiPolygon:
    """An irregular country-like polygon ~``km`` across with ``vertices`` vertices.

    Star-shaped around (lon, lat): strictly increasing angles and positive radii,
    so it is always simple. Distances are scaled at the centre's latitude.
    """
    if vertices < 3:
        raise ValueError(f"a polygon needs at least 3 vertices, got {vertices}")
    if km <= 0:
        raise ValueError(f"km must be > 0, got {km}")
    rng = seeds.rng(seed, seeds.COUNTRY)
    step = 2 * math.pi / vertices
    theta = (np.arange(vertices) + rng.uniform(-0.35, 0.35, size=vertices)) * step
    radius = np.ones(vertices)
    for k in range(2, 9):  # smooth coastline-like lobes
        radius += rng.uniform(0.0, 0.22 / k**0.7) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    radius = np.clip(radius, 0.3, None) * (1.0 + 0.04 * rng.standard_normal(vertices))
    radius *= km / 2 / radius.mean()
    north = radius * np.sin(theta) / KM_PER_DEGREE
    east = radius * np.cos(theta) / (KM_PER_DEGREE * math.cos(math.radians(lat)))
    if abs(lat) + float(np.abs(north).max()) >= 90.0:
        raise ValueError(f"a {km} km country at latitude {lat} reaches a pole")
    ring = np.round(np.stack([lon + east, lat + north], axis=-1), DECIMALS)
    polygon = shapely.Polygon(np.vstack([ring, ring[:1]]))
    return wrap_antimeridian(np.array([polygon], dtype=object))[0]
