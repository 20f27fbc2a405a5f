"""Hand-written SQL: the floor the link step is held to, and the variants measured beside it.

Parameters, in every statement: ``$1`` dream id, ``$2`` finder id, ``$3`` the AOI
as EWKB (bytea), ``$4``/``$5`` the half-open window ``[start, end)``, ``$6`` the
AOI's spheroidal area in m² (coverage statements only). The floor statement
does what ``LookupRepository.link`` does and returns what it returns (rows new,
rows the study had before): one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` in
a CTE and the two counts, in one round trip, autocommit, on a connection whose
``plan_cache_mode`` is ``force_custom_plan`` (so the planner sees the AOI and the
window as it would see literals) and ``jit`` off, as Noctis sets both.

The coverage is written out as ``noctis.repositories.geo.clipped_area`` computes it
(at commit 5bf08a3: the ``ST_Covers`` shortcuts, the repairs). The earlier forms stay
here as comparisons: without the shortcuts, and the overlay alone.
"""

from __future__ import annotations

from typing import Final

AOI: Final = "ST_GeomFromEWKB($3::bytea)"
MATCH: Final = (
    f"ST_Intersects(a.footprint, {AOI}) "
    "AND a.acquired_at >= $4::timestamptz AND a.acquired_at < $5::timestamptz"
)
# Coverage as noctis.repositories.geo.clipped_share computes it: the spheroidal area of
# footprint ∩ AOI (edges straight in lon/lat: densified, then the Lambert cylindrical
# equal-area projection EPSG:6933), a repaired footprint (ST_MakeValid) when invalid.
VALID: Final = "ST_IsValid(a.footprint)"
REPAIRED: Final = "ST_CollectionExtract(ST_MakeValid(a.footprint), 3)"


def equal_area(geom: str) -> str:
    """Noctis' area of ``geom`` (noctis.repositories.geo.spheroid_area), in m²."""
    return f"ST_Area(ST_Transform(ST_Segmentize({geom}, 0.25), 6933))"


def clipped_area(usual: str) -> str:
    """The area of footprint ∩ AOI; ``usual`` is the arm for a valid footprint."""
    return (
        f"CASE WHEN {VALID} THEN {usual}"
        f" ELSE {equal_area(f'ST_Intersection({REPAIRED}, {AOI})')} END"
    )


OVERLAY: Final = equal_area(f"ST_Intersection(a.footprint, {AOI})")
# The usual arm skips the overlay where a predicate settles it: a footprint covering the
# AOI covers all of it (coverage 1), a footprint inside the AOI covers itself.
SHORTCUTS: Final = (
    "CASE"
    f" WHEN ST_Covers(a.footprint, {AOI}) THEN $6::float8"
    f" WHEN ST_Covers({AOI}, a.footprint) THEN {equal_area('a.footprint')}"
    f" ELSE {OVERLAY} END"
)
COVERAGE: Final = f"least(1.0, {clipped_area(SHORTCUTS)} / $6::float8)"
NO_COVERAGE: Final = "NULL::float8"
# The earlier forms, measured beside it:
# - the repairs without the shortcuts (the repository before 5bf08a3);
NO_SHORTCUTS_COVERAGE: Final = f"least(1.0, {clipped_area(OVERLAY)} / $6::float8)"
# - the overlay alone (before the repairs).
OVERLAY_COVERAGE: Final = f"least(1.0, {OVERLAY} / $6::float8)"
COVERAGES: Final = {
    "noctis": COVERAGE,
    "no shortcuts": NO_SHORTCUTS_COVERAGE,
    "overlay only": OVERLAY_COVERAGE,
}
ALREADY_LINKED: Final = (
    "NOT EXISTS (SELECT 1 FROM archive_lookup_item l WHERE l.dream_id = $1::bigint"
    " AND l.imagery_finder_id = $2::bigint AND l.archive_item_id = a.id)"
)
COUNTS: Final = """
SELECT (SELECT count(*) FROM inserted) AS new,
       (SELECT count(*) FROM archive_lookup_item
         WHERE dream_id = $1::bigint AND imagery_finder_id = $2::bigint) AS existing
"""


def insert_select(coverage: str, *, skip_linked: bool = False) -> str:
    where = MATCH + (f" AND {ALREADY_LINKED}" if skip_linked else "")
    return f"""
INSERT INTO archive_lookup_item (dream_id, imagery_finder_id, archive_item_id, coverage)
SELECT $1::bigint, $2::bigint, a.id, {coverage}
FROM archive_item a
WHERE {where}
ON CONFLICT ON CONSTRAINT uq_archive_lookup_item_study_item DO NOTHING"""


def floor(coverage: bool, *, form: str = "noctis", skip_linked: bool = False) -> str:
    """The floor: the link as one statement returning (new, existing); ``form`` of the
    coverage: one of :data:`COVERAGES`."""
    expression = COVERAGES[form] if coverage else NO_COVERAGE
    body = insert_select(expression, skip_linked=skip_linked)
    return f"WITH inserted AS ({body}\nRETURNING 1)\n{COUNTS}"


# Union coverage: area(union of (footprint ∩ AOI)) / area(AOI) over the study's rows, as
# LookupRepository.union_coverage computes it at 5bf08a3 (the union of the repaired
# footprints, clipped to the AOI once, measured by geo.spheroid_area), and the earlier
# form: an overlay per row, then the union (the same area: the union of f_i ∩ A is
# (the union of f_i) ∩ A). $1 dream, $2 finder, $3 AOI, $4 area.
_STUDY_ROWS: Final = """
FROM archive_lookup_item l JOIN archive_item a ON a.id = l.archive_item_id
WHERE l.dream_id = $1::bigint AND l.imagery_finder_id = $2::bigint"""
_CLEAN: Final = f"CASE WHEN {VALID} THEN a.footprint ELSE {REPAIRED} END"


UNION_COVERAGE_PER_MATCH: Final = (
    "SELECT least(1.0, coalesce("
    + equal_area(f"ST_Union(ST_Intersection({_CLEAN}, {AOI}))")
    + ", 0.0) / $4::float8)"
    + _STUDY_ROWS
)
UNION_COVERAGE: Final = (
    "SELECT least(1.0, coalesce("
    + equal_area("u.g")
    + ", 0.0) / $4::float8) FROM (SELECT ST_Intersection(ST_Union("
    + _CLEAN
    + f"), {AOI}) AS g"
    + _STUDY_ROWS
    + ") u"
)

# (c) of the plan-strategy comparison: the AOI and the window come from the finder
# row inside the statement, so no geometry is a parameter ($1 dream, $2 finder).
JOIN_FINDER: Final = (
    """
WITH f AS MATERIALIZED (
    SELECT id, location,
           CASE WHEN ST_Dimension(location) = 2
                THEN """
    + equal_area("location")
    + """ END AS area_m2,
           coalesce(start_date::timestamp AT TIME ZONE 'UTC', '-infinity') AS start_at,
           coalesce((end_date + 1)::timestamp AT TIME ZONE 'UTC', 'infinity') AS end_at
    FROM imagery_finder WHERE id = $2::bigint
), inserted AS (
    INSERT INTO archive_lookup_item (dream_id, imagery_finder_id, archive_item_id, coverage)
    SELECT $1::bigint, f.id, a.id, {coverage}
    FROM f JOIN archive_item a
      ON ST_Intersects(a.footprint, f.location)
     AND a.acquired_at >= f.start_at AND a.acquired_at < f.end_at
    ON CONFLICT ON CONSTRAINT uq_archive_lookup_item_study_item DO NOTHING
    RETURNING 1
)
"""
    + COUNTS
)
JOIN_COVERAGE: Final = (
    "CASE WHEN f.area_m2 > 0 THEN least(1.0,"
    f" {equal_area('ST_Intersection(a.footprint, f.location)')} / f.area_m2) END"
)


def join_finder(coverage: bool) -> str:
    """(c): the finder row joined; coverage from the finder's own area, or NULL."""
    return JOIN_FINDER.replace("{coverage}", JOIN_COVERAGE if coverage else NO_COVERAGE)
