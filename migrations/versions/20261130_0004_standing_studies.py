"""Standing studies: the studies that stand, the change queue and its triggers, ``updated``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

- ``standing_study``: one row per study (finder x dream) that has run, with the finder's
  criteria as the study checked them (the AOI, its area, the half-open window, the filters);
  a GiST index on the AOI for the matcher.
- ``standing_change``: the change queue. Triggers on ``archive_item`` (statement-level, with
  transition tables, so a COPY of a million rows costs one INSERT … SELECT) enqueue every
  inserted row and every updated row whose footprint, acquired_at, cloud_cover or collection
  changed (OLD and NEW compared: a no-op UPDATE enqueues nothing), inside the writer's
  transaction, whoever the writer is. The functions are SECURITY DEFINER with a fixed
  search_path, so writers need no grant on the queue.
- ``notification_outbox`` learns the ``imagery-finder-study.updated`` event: its key is
  ``…:update-<row id>:updated``; the one-outcome-per-run rule (now a partial unique index of
  the same name) applies to ``completed`` and ``failed`` only, since one matcher pass writes
  one ``updated`` per study per batch.

The downgrade drops both tables and the triggers, and deletes the ``updated`` notifications.
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPDATED = "imagery-finder-study.updated"
EVENTS_BEFORE = "('imagery-finder-study.completed', 'imagery-finder-study.failed')"
EVENTS_AFTER = (
    "('imagery-finder-study.completed', 'imagery-finder-study.failed', "
    "'imagery-finder-study.updated')"
)
_PREFIX = "'noctis:imagery-finder-' || imagery_finder_id::text || '\\:dream-' || dream_id::text || "
KEY_BEFORE = (
    _PREFIX + "CASE WHEN event = 'imagery-finder-study.completed' "
    "THEN '\\:update-' || id::text || '\\:completed' "
    "ELSE '\\:run-' || flow_run_id || '\\:failed' END"
)
# As noctis.models.OUTBOX_KEY_SQL, frozen here: the keys of existing rows do not change.
KEY_AFTER = (
    _PREFIX + "CASE WHEN event = 'imagery-finder-study.completed' "
    "THEN '\\:update-' || id::text || '\\:completed' "
    "WHEN event = 'imagery-finder-study.updated' "
    "THEN '\\:update-' || id::text || '\\:updated' "
    "ELSE '\\:run-' || flow_run_id || '\\:failed' END"
)
ENQUEUE_INSERTED = """
CREATE FUNCTION noctis_enqueue_inserted_items() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO standing_change (archive_item_id) SELECT id FROM noctis_new_items;
  RETURN NULL;
END $$
"""
ENQUEUE_UPDATED = """
CREATE FUNCTION noctis_enqueue_updated_items() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO standing_change (archive_item_id)
  SELECT n.id FROM noctis_new_items n LEFT JOIN noctis_old_items o ON o.id = n.id
  WHERE o.id IS NULL
     OR ST_AsEWKB(n.footprint) IS DISTINCT FROM ST_AsEWKB(o.footprint)
     OR n.acquired_at IS DISTINCT FROM o.acquired_at
     OR n.cloud_cover IS DISTINCT FROM o.cloud_cover
     OR n.collection IS DISTINCT FROM o.collection;
  RETURN NULL;
END $$
"""


def _replace_key(expression: str) -> None:
    op.drop_column("notification_outbox", "idempotency_key")  # its unique constraint goes too
    op.add_column(
        "notification_outbox",
        sa.Column(
            "idempotency_key", sa.Text(), sa.Computed(expression, persisted=True), nullable=False
        ),
    )
    op.create_unique_constraint(
        op.f("uq_notification_outbox_idempotency_key"), "notification_outbox", ["idempotency_key"]
    )


def upgrade() -> None:
    op.create_table(
        "standing_study",
        sa.Column("imagery_finder_id", sa.BigInteger(), nullable=False),
        sa.Column("dream_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "location",
            geoalchemy2.Geometry("GEOMETRY", srid=4326, spatial_index=False),
            nullable=False,
        ),
        sa.Column("area_m2", sa.Double(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_cloud_cover", sa.REAL(), nullable=True),
        sa.Column("collections", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column(
            "enrolled_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(closed_at IS NULL) = (closed_reason IS NULL)",
            name=op.f("ck_standing_study_closed_with_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["dream_id"], ["dream.id"], name="fk_standing_study_dream_id_dream", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["imagery_finder_id"],
            ["imagery_finder.id"],
            name="fk_standing_study_imagery_finder_id_imagery_finder",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("imagery_finder_id", "dream_id", name="pk_standing_study"),
    )
    op.create_index(
        "ix_standing_study_location", "standing_study", ["location"], postgresql_using="gist"
    )
    op.create_table(
        "standing_change",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("archive_item_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "enqueued_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.clock_timestamp(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_standing_change"),
    )
    op.create_index("ix_standing_change_archive_item_id", "standing_change", ["archive_item_id"])
    op.execute(ENQUEUE_INSERTED)
    op.execute(ENQUEUE_UPDATED)
    op.execute(
        "CREATE TRIGGER trg_archive_item_standing_insert AFTER INSERT ON archive_item "
        "REFERENCING NEW TABLE AS noctis_new_items FOR EACH STATEMENT "
        "EXECUTE FUNCTION noctis_enqueue_inserted_items()"
    )
    op.execute(
        "CREATE TRIGGER trg_archive_item_standing_update AFTER UPDATE ON archive_item "
        "REFERENCING OLD TABLE AS noctis_old_items NEW TABLE AS noctis_new_items "
        "FOR EACH STATEMENT EXECUTE FUNCTION noctis_enqueue_updated_items()"
    )

    op.drop_constraint(
        op.f("ck_notification_outbox_event_known"), "notification_outbox", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_notification_outbox_event_known"),
        "notification_outbox",
        f"event IN {EVENTS_AFTER}",
    )
    _replace_key(KEY_AFTER)
    op.drop_constraint(
        op.f("uq_notification_outbox_run_event"), "notification_outbox", type_="unique"
    )
    op.create_index(
        "uq_notification_outbox_run_event",
        "notification_outbox",
        ["flow_run_id", "event"],
        unique=True,
        postgresql_where=sa.text(f"event <> '{UPDATED}'"),
    )


def downgrade() -> None:
    op.execute(f"DELETE FROM notification_outbox WHERE event = '{UPDATED}'")
    op.drop_index("uq_notification_outbox_run_event", table_name="notification_outbox")
    op.create_unique_constraint(
        op.f("uq_notification_outbox_run_event"), "notification_outbox", ["flow_run_id", "event"]
    )
    _replace_key(KEY_BEFORE)
    op.drop_constraint(
        op.f("ck_notification_outbox_event_known"), "notification_outbox", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_notification_outbox_event_known"),
        "notification_outbox",
        f"event IN {EVENTS_BEFORE}",
    )
    op.execute("DROP TRIGGER trg_archive_item_standing_update ON archive_item")
    op.execute("DROP TRIGGER trg_archive_item_standing_insert ON archive_item")
    op.execute("DROP FUNCTION noctis_enqueue_updated_items()")
    op.execute("DROP FUNCTION noctis_enqueue_inserted_items()")
    op.drop_table("standing_change")
    op.drop_table("standing_study")
