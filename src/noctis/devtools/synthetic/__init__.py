"""A deterministic synthetic archive for ``noctis demo``, the benchmarks and the tests.

:func:`generate` streams an archive of exactly ``spec.size`` items as columnar
:class:`ArchiveBatch` es; :func:`load_archive` COPYs them into ``archive_item``.
The same :class:`ArchiveSpec` always gives byte-identical rows (in the same
order), whatever ``batch_size``.

By concern:

- :mod:`.cities`: the cities scenes cluster around (the table is ``cities.csv``);
- :mod:`.grid`: the Sentinel-2-like tile grid; :mod:`.geometry`: the sphere,
  rounding and the antimeridian split shared by the grid, scenes and AOIs;
- :mod:`.spec`: :class:`ArchiveSpec`; :mod:`.plan`: which item comes when
  (tiles near cities first); :mod:`.scenes`: the rows, block by block
  (:func:`generate`); :mod:`.batch`: :class:`ArchiveBatch` and its COPY text;
  :mod:`.seeds`: the keyed random streams;
- :mod:`.loader`: the COPY loader; :mod:`.aois`: AOIs around cities.
"""

from noctis.devtools.synthetic.aois import box_aoi, city_aoi, country_aoi, point_aoi, region_aoi
from noctis.devtools.synthetic.batch import COPY_COLUMNS, ArchiveBatch
from noctis.devtools.synthetic.cities import CITIES, City, city
from noctis.devtools.synthetic.loader import load_archive, load_archive_url
from noctis.devtools.synthetic.scenes import generate
from noctis.devtools.synthetic.spec import COMMERCIAL_COLLECTIONS, SENTINEL_COLLECTION, ArchiveSpec

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
