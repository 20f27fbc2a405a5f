"""The CSV export's WKT reads back to the stored doubles."""

from __future__ import annotations

import numpy as np
import shapely

from noctis.exports import footprint_wkt


def test_footprint_wkt_reads_back_to_the_same_doubles() -> None:
    rng = np.random.default_rng(7)
    lon = np.concatenate([rng.uniform(-180, 180, 20_000), rng.uniform(-1e-9, 1e-9, 100)])
    lat = rng.uniform(-90, 90, len(lon))
    lon[:3] = [179.99999999999997, 1 / 3, 5e-324]
    boxes = shapely.box(lon, lat, lon + 1e-3, lat + 1e-3)
    back = shapely.from_wkt(footprint_wkt(shapely.to_wkb(boxes)))
    assert np.array_equal(shapely.get_coordinates(back), shapely.get_coordinates(boxes))
