"""Moved to :mod:`noctis.devtools.synthetic`."""

# TEMPORARY shim, removed at merge: demo.py and cli.py still import it on this branch.
from noctis.devtools.synthetic import (
    CITIES,
    COMMERCIAL_COLLECTIONS,
    COPY_COLUMNS,
    SENTINEL_COLLECTION,
    ArchiveBatch,
    ArchiveSpec,
    City,
    box_aoi,
    city,
    city_aoi,
    country_aoi,
    generate,
    load_archive,
    load_archive_url,
    point_aoi,
    region_aoi,
)

__all__ = [
    "CITIES",
    "COMMERCIAL_COLLECTIONS",
    "COPY_COLUMNS",
    "SENTINEL_COLLECTION",
    "ArchiveBatch",
    "ArchiveSpec",
    "City",
    "box_aoi",
    "city",
    "city_aoi",
    "country_aoi",
    "generate",
    "load_archive",
    "load_archive_url",
    "point_aoi",
    "region_aoi",
]
