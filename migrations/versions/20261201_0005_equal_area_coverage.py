"""Coverage in the equal-area projection: recompute what the geography rule stored.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Until this revision Noctis measured every shape narrower than 180° of longitude with
``ST_Area(geometry::geography)``, which reads each edge as a great-circle arc: another shape than
the one the match rule matched, once larger than a few degrees (``noctis.repositories.geo``).
The rule is now: edges straight in lon/lat, densified to 0.25°, measured in the Lambert
cylindrical equal-area projection (``EPSG:6933``). This data migration recomputes, with it, what
the old rule stored and nothing rewrites later:

- ``standing_study.area_m2``, the AOI's area the standing matcher divides each new scene's by;
- ``archive_lookup_item.coverage`` of the studies whose AOI (the standing row's, else the
  finder's as it is now) spans more than 1° of longitude or latitude: below that the two
  readings differ by under about 1e-4, and a rerun does not rewrite existing rows.

The SQL is frozen here (as the coverage was computed at this revision), not imported. The
downgrade changes nothing: the old values were wrong, and are not kept.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _area(geom: str) -> str:
    return f"ST_Area(ST_Transform(ST_Segmentize({geom}, 0.25), 6933))"


REPAIRED = "ST_CollectionExtract(ST_MakeValid(a.footprint), 3)"
AREAS = f"""
UPDATE standing_study SET area_m2 = {_area("location")}
WHERE area_m2 IS NOT NULL AND area_m2 > 0
"""

COVERAGES = f"""
WITH studies AS (
    SELECT DISTINCT imagery_finder_id, dream_id FROM archive_lookup_item
    WHERE coverage IS NOT NULL
), aois AS (
    SELECT st.imagery_finder_id AS finder_id, st.dream_id,
           coalesce(s.location, f.location) AS aoi
    FROM studies st
    JOIN imagery_finder f ON f.id = st.imagery_finder_id
    LEFT JOIN standing_study s
           ON s.imagery_finder_id = st.imagery_finder_id AND s.dream_id = st.dream_id
), large AS (
    SELECT finder_id, dream_id, aoi, {_area("aoi")} AS area
    FROM aois
    WHERE ST_Dimension(aoi) = 2
      AND (ST_XMax(aoi) - ST_XMin(aoi) > 1 OR ST_YMax(aoi) - ST_YMin(aoi) > 1)
), measured AS (
    SELECT l.id,
           CASE WHEN NOT ST_Perimeter(a.footprint) < 'Infinity'::float8 THEN NULL
                WHEN ST_IsValid(a.footprint)
                THEN least(1.0, {_area("ST_Intersection(a.footprint, g.aoi)")} / g.area)
                ELSE least(1.0, {_area(f"ST_Intersection({REPAIRED}, g.aoi)")} / g.area)
           END AS coverage
    FROM archive_lookup_item l
    JOIN large g ON g.finder_id = l.imagery_finder_id AND g.dream_id = l.dream_id
    JOIN archive_item a ON a.id = l.archive_item_id
    WHERE l.coverage IS NOT NULL AND g.area > 0
)
UPDATE archive_lookup_item l SET coverage = m.coverage
FROM measured m WHERE m.id = l.id AND m.coverage IS DISTINCT FROM l.coverage
"""


def upgrade() -> None:
    op.execute(AREAS)
    op.execute(COVERAGES)


def downgrade() -> None:
    """Nothing: the areas and coverages of the geography rule are not restored."""
