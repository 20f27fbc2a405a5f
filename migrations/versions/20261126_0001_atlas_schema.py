"""The Atlas schema: dream, imagery_finder, archive_item, archive_lookup_item.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Creates the postgis and btree_gist extensions when missing. The downgrade drops
the four tables but leaves the extensions: they may serve other schemas of the
same database, and dropping postgis would break them.
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False)


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def _geometry(name: str) -> sa.Column:  # type: ignore[type-arg]
    geometry = geoalchemy2.Geometry("GEOMETRY", srid=4326, spatial_index=False)
    return sa.Column(name, geometry, nullable=False)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")

    op.create_table(
        "dream",
        _id(),
        sa.Column("name", sa.Text(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_dream"),
    )
    op.create_table(
        "imagery_finder",
        _id(),
        sa.Column("name", sa.Text(), nullable=True),
        _geometry("location"),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("max_cloud_cover", sa.REAL(), nullable=True),
        sa.Column("collections", postgresql.ARRAY(sa.Text()), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "start_date IS NULL OR end_date IS NULL OR start_date <= end_date",
            name=op.f("ck_imagery_finder_start_before_end"),
        ),
        sa.CheckConstraint(
            "max_cloud_cover IS NULL OR max_cloud_cover BETWEEN 0 AND 100",
            name=op.f("ck_imagery_finder_max_cloud_cover_range"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_imagery_finder"),
    )
    op.create_table(
        "archive_item",
        _id(),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("collection", sa.Text(), nullable=False),
        _geometry("footprint"),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cloud_cover", sa.REAL(), nullable=True),
        sa.Column("gsd", sa.REAL(), nullable=True),
        sa.Column(
            "properties",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        _created_at(),
        sa.CheckConstraint(
            "cloud_cover IS NULL OR cloud_cover BETWEEN 0 AND 100",
            name=op.f("ck_archive_item_cloud_cover_range"),
        ),
        sa.CheckConstraint(
            "ST_GeometryType(footprint) IN ('ST_Polygon', 'ST_MultiPolygon')",
            name=op.f("ck_archive_item_footprint_polygonal"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_archive_item"),
        sa.UniqueConstraint("external_id", name="uq_archive_item_external_id"),
    )
    # One composite GiST (btree_gist supplies the timestamptz operator class):
    # measured faster than a footprint GiST bitmap-ANDed with an acquired_at btree.
    op.create_index(
        "ix_archive_item_footprint_acquired_at",
        "archive_item",
        ["footprint", "acquired_at"],
        postgresql_using="gist",
    )
    op.create_table(
        "archive_lookup_item",
        _id(),
        sa.Column("dream_id", sa.BigInteger(), nullable=False),
        sa.Column("imagery_finder_id", sa.BigInteger(), nullable=False),
        sa.Column("archive_item_id", sa.BigInteger(), nullable=False),
        sa.Column("coverage", sa.Double(), nullable=True),
        _created_at(),
        sa.CheckConstraint(
            "coverage IS NULL OR coverage BETWEEN 0 AND 1",
            name=op.f("ck_archive_lookup_item_coverage_range"),
        ),
        sa.ForeignKeyConstraint(
            ["dream_id"],
            ["dream.id"],
            name="fk_archive_lookup_item_dream_id_dream",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["imagery_finder_id"],
            ["imagery_finder.id"],
            name="fk_archive_lookup_item_imagery_finder_id_imagery_finder",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["archive_item_id"],
            ["archive_item.id"],
            name="fk_archive_lookup_item_archive_item_id_archive_item",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_archive_lookup_item"),
        sa.UniqueConstraint(
            "dream_id",
            "imagery_finder_id",
            "archive_item_id",
            name="uq_archive_lookup_item_study_item",
        ),
    )
    op.create_index(
        "ix_archive_lookup_item_imagery_finder_id", "archive_lookup_item", ["imagery_finder_id"]
    )
    op.create_index(
        "ix_archive_lookup_item_archive_item_id", "archive_lookup_item", ["archive_item_id"]
    )


def downgrade() -> None:
    op.drop_table("archive_lookup_item")
    op.drop_table("archive_item")
    op.drop_table("imagery_finder")
    op.drop_table("dream")
