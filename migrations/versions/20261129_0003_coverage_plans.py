"""Coverage plans: coverage_plan (one row per study, slicing and slice) and coverage_plan_item.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Noctis' own tables (noctis.plans). Both cascade from the study's rows: deleting a dream, a
finder or a lookup row deletes the plans (or plan items) that name it. The downgrade drops
both tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _double(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Double(), nullable=False)


def _integer(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Integer(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "coverage_plan",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("dream_id", sa.BigInteger(), nullable=False),
        sa.Column("imagery_finder_id", sa.BigInteger(), nullable=False),
        sa.Column("per", sa.Text(), nullable=False),
        sa.Column("slice_start", sa.Date(), nullable=False),
        sa.Column("slice_end", sa.Date(), nullable=False),
        _double("target"),
        _double("min_gain_m2"),
        _double("cloud_weight"),
        _double("recency_weight"),
        _integer("candidates"),
        _integer("scenes"),
        _integer("lower_bound"),
        _double("covered_m2"),
        _double("target_m2"),
        _double("union_m2"),
        _double("aoi_m2"),
        sa.Column("reached", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "target > 0 AND target <= 1", name=op.f("ck_coverage_plan_target_range")
        ),
        sa.CheckConstraint("slice_start <= slice_end", name=op.f("ck_coverage_plan_slice_order")),
        sa.ForeignKeyConstraint(
            ["dream_id"], ["dream.id"], name="fk_coverage_plan_dream_id_dream", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["imagery_finder_id"],
            ["imagery_finder.id"],
            name="fk_coverage_plan_imagery_finder_id_imagery_finder",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_coverage_plan"),
        sa.UniqueConstraint(
            "dream_id",
            "imagery_finder_id",
            "per",
            "slice_start",
            name="uq_coverage_plan_study_slice",
        ),
    )
    op.create_index("ix_coverage_plan_imagery_finder_id", "coverage_plan", ["imagery_finder_id"])
    op.create_table(
        "coverage_plan_item",
        sa.Column("coverage_plan_id", sa.BigInteger(), nullable=False),
        _integer("rank"),
        sa.Column("archive_lookup_item_id", sa.BigInteger(), nullable=False),
        _double("gain_m2"),
        _double("covered_m2"),
        sa.ForeignKeyConstraint(
            ["coverage_plan_id"],
            ["coverage_plan.id"],
            name="fk_coverage_plan_item_coverage_plan_id_coverage_plan",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["archive_lookup_item_id"],
            ["archive_lookup_item.id"],
            name="fk_coverage_plan_item_archive_lookup_item",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("coverage_plan_id", "rank", name="pk_coverage_plan_item"),
    )
    op.create_index(
        "ix_coverage_plan_item_archive_lookup_item_id",
        "coverage_plan_item",
        ["archive_lookup_item_id"],
    )


def downgrade() -> None:
    op.drop_table("coverage_plan_item")
    op.drop_table("coverage_plan")
