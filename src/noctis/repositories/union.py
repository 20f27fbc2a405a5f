"""The union coverage of a study as one statement: the share of the AOI that at least one of
its linked items covers. SQL only; :meth:`noctis.repositories.LookupRepository.union_coverage`
runs it.

The statement takes three exact shortcuts before the overlay, each leaving the union as it is:

1. **One footprint covers the AOI**: the answer is 1.0 and nothing is unioned. A tile larger
   than the AOI (a city under a Sentinel-2 or Landsat tile) makes this the usual case.
2. **Each distinct footprint once**: a revisit of a fixed tile repeats its footprint, and a
   union does not change when a member repeats. PostGIS' geometry equality tells them apart
   (the same bytes, not the same bounding box).
3. **The sieve**, in rounds (:data:`SIEVE`): the 64 largest footprints are unioned first, and
   every footprint that union covers is dropped; then the 448 largest of those left join the
   union, and every footprint it covers is dropped again; the rest join the union last. A
   union does not change when a member inside it is left out. Small scenes (SkySat,
   WorldView) inside large tiles (Sentinel-2) are most of a mixed archive, and GEOS' cascaded
   union pays for every member; a 1,000 km country needs more than 64 tiles before most
   scenes fall inside, hence the second round. ``benchmarks/coverage.py`` measures the sieve
   against one round and against the union of every distinct footprint.

Then the union is clipped to the AOI once: union(f) ∩ A = union(f ∩ A), one overlay instead of
one per match. A footprint that needs repair enters in its repaired form
(:func:`noctis.repositories.geo.clean_footprint`); one with a non-finite coordinate adds
nothing.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import CTE, Select, and_, case, false, func, literal, select

from noctis.models import ArchiveItem, ArchiveLookupItem
from noctis.repositories.archive import MatchCriteria, aoi_param
from noctis.repositories.geo import clean_footprint, finite, spheroid_area
from noctis.repositories.keys import of_study

SIEVE: Final = (64, 448)
"""The sieve's rounds: how many of the largest distinct footprints still left each round adds to
the union before it drops every footprint the union covers (the module doc)."""


def union_share(criteria: MatchCriteria, *, dream_id: int) -> Select[Any]:
    """One row, one column: the study's union coverage in [0, 1] (0.0 without a match).

    ``criteria`` must have an area (``area_m2 > 0``): a point AOI has no coverage.
    """
    assert criteria.area_m2 is not None and criteria.area_m2 > 0
    study = of_study(ArchiveLookupItem, finder_id=criteria.finder_id, dream_id=dream_id)
    aoi = aoi_param(criteria)
    linked = (
        select(ArchiveItem.footprint.label("footprint"))
        .select_from(ArchiveLookupItem)
        .join(ArchiveItem, ArchiveItem.id == ArchiveLookupItem.archive_item_id)
        .where(*study)
        .distinct()
        .subquery("linked")
    )
    # Referenced twice below, so PostgreSQL computes it once (a materialized CTE).
    distinct = select(clean_footprint(linked.c.footprint).label("g")).cte("footprints")
    sieved, left = _sieve(distinct)
    members = select(sieved.c.u.label("member")).union_all(select(left.c.g)).subquery("members")
    # Clipped in a subquery of its own, so the overlay runs once (spheroid_area reads its
    # argument three times).
    clipped = select(
        func.ST_Intersection(func.ST_Union(members.c.member), aoi).label("covered")
    ).subquery("clipped")
    # No match: ST_Union is NULL, and coalesce makes it 0.0.
    union_area = func.coalesce(spheroid_area(clipped.c.covered), 0.0)
    union = (
        select(func.least(1.0, union_area / criteria.area_m2))
        .select_from(clipped)
        .scalar_subquery()
    )
    # Bounding box first (`~`, cheap), then the predicate only for a finite, valid footprint
    # (GEOS may raise on others), in a CASE: PostgreSQL does not promise the order of ANDed
    # conditions. The outer CASE evaluates the union only when no footprint covers the AOI.
    footprint = ArchiveItem.footprint
    covers = case(
        (and_(finite(footprint), func.ST_IsValid(footprint)), func.ST_Covers(footprint, aoi)),
        else_=false(),
    )
    one_covers = (
        select(literal(1))
        .select_from(ArchiveLookupItem)
        .join(ArchiveItem, ArchiveItem.id == ArchiveLookupItem.archive_item_id)
        .where(*study, footprint.op("~")(aoi), covers)
        .exists()
    )
    return select(case((one_covers, literal(1.0)), else_=union))


def _sieve(distinct: CTE) -> tuple[CTE, CTE]:
    """The sieve's rounds over ``distinct`` (column ``g``): the union so far (column ``u``) and
    the footprints it does not cover (column ``g``)."""
    union: CTE | None = None
    left = distinct
    for n, size in enumerate(SIEVE, start=1):
        largest = (
            select(left.c.g)
            .order_by(func.ST_Area(left.c.g).desc().nulls_last())
            .limit(size)
            .subquery(f"largest_{n}")
        )
        head = select(largest.c.g)
        heads = (head if union is None else head.union_all(select(union.c.u))).subquery(f"head_{n}")
        union = select(func.ST_Union(heads.c.g).label("u")).cte(f"sieve_{n}")
        # A non-finite footprint (cleaned to NULL) sorts last and is dropped (ST_Covers is
        # NULL): it adds nothing to the union either way. The union is NULL only when every
        # footprint is; then nothing is kept.
        left = (
            select(left.c.g)
            .select_from(left)
            .join(union, literal(True))
            .where(~func.ST_Covers(union.c.u, left.c.g))
            .cte(f"left_{n}")
        )
    assert union is not None
    return union, left
