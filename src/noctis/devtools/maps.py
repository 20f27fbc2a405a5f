"""The demo's PNG map: the AOI over the matched footprints (matplotlib, no basemap)."""

from __future__ import annotations

import math
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry


def _rings(geometry: BaseGeometry) -> list[Any]:
    polygons = getattr(geometry, "geoms", [geometry])
    return [p.exterior for p in polygons if not p.is_empty]


def draw(plt: Any, *, aoi: BaseGeometry, footprints: list[BaseGeometry], title: str) -> Any:
    """A matplotlib figure (``plt`` is ``matplotlib.pyplot``, passed so importing this needs
    no matplotlib): the footprints filled, the AOI outlined, framed on the AOI."""
    figure, axes = plt.subplots(figsize=(8, 8))
    for footprint in footprints:
        for ring in _rings(footprint):
            x, y = ring.xy
            axes.fill(x, y, facecolor="#4c72b0", edgecolor="#1f3b73", alpha=0.08, linewidth=0.4)
    for ring in _rings(aoi):
        x, y = ring.xy
        axes.plot(x, y, color="#c44e52", linewidth=2.0, label="AOI")
    x_min, y_min, x_max, y_max = shapely.bounds(aoi)
    pad_x, pad_y = (x_max - x_min) * 0.6, (y_max - y_min) * 0.6
    axes.set_xlim(x_min - pad_x, x_max + pad_x)
    axes.set_ylim(y_min - pad_y, y_max + pad_y)
    axes.set_aspect(1 / max(0.1, math.cos(math.radians(aoi.centroid.y))))  # degrees as km
    axes.set_xlabel("longitude (°)")
    axes.set_ylabel("latitude (°)")
    axes.set_title(title, fontsize=10)
    axes.grid(True, linewidth=0.3, alpha=0.5)
    axes.legend(loc="upper right")
    return figure
