"""Moved to :mod:`noctis.devtools.synthetic`."""

# TEMPORARY shim, removed at merge: demo.py and cli.py still import it on this branch.
# ruff: noqa: I001  (one import of explicit re-exports, `X as X` for mypy --strict)
from noctis.devtools.synthetic import (
    CITIES as CITIES,
    COMMERCIAL_COLLECTIONS as COMMERCIAL_COLLECTIONS,
    COPY_COLUMNS as COPY_COLUMNS,
    SENTINEL_COLLECTION as SENTINEL_COLLECTION,
    ArchiveBatch as ArchiveBatch,
    ArchiveSpec as ArchiveSpec,
    City as City,
    box_aoi as box_aoi,
    city as city,
    city_aoi as city_aoi,
    country_aoi as country_aoi,
    generate as generate,
    load_archive as load_archive,
    load_archive_url as load_archive_url,
    point_aoi as point_aoi,
    region_aoi as region_aoi,
)
