"""The notification outbox: what Augur is to be told, written with what it reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

``notification_outbox`` is Noctis' own table: one row per logical notification (the
``completed`` of a committed study update, the ``failed`` of a flow run), written in the same
transaction as the lookup rows it reports, delivered by the flow right after COMMIT or by the
dispatcher later (``noctis.outbox``). Its Idempotency-Key is a generated column, fixed when the
row is written. No foreign keys: a notification outlives the rows it names. The downgrade drops
the table, and with it whatever was still to be delivered.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in noctis.models.OUTBOX_KEY_SQL, frozen here: a key never changes once written. (\\: keeps
# SQLAlchemy from reading :dream as a bind parameter.)
KEY_SQL = (
    "'noctis:imagery-finder-' || imagery_finder_id::text || '\\:dream-' || dream_id::text || "
    "CASE WHEN event = 'imagery-finder-study.completed' "
    "THEN '\\:update-' || id::text || '\\:completed' "
    "ELSE '\\:run-' || flow_run_id || '\\:failed' END"
)


def _timestamp(name: str, *, default: bool) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.func.now() if default else None,
        nullable=not default,
    )


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "idempotency_key", sa.Text(), sa.Computed(KEY_SQL, persisted=True), nullable=False
        ),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("imagery_finder_id", sa.BigInteger(), nullable=False),
        sa.Column("dream_id", sa.BigInteger(), nullable=False),
        sa.Column("flow_run_id", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("state", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "history",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("created_at", default=True),
        _timestamp("queued_at", default=True),
        _timestamp("requeued_at", default=False),
        _timestamp("delivered_at", default=False),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'dead')",
            name=op.f("ck_notification_outbox_state_known"),
        ),
        sa.CheckConstraint(
            "event IN ('imagery-finder-study.completed', 'imagery-finder-study.failed')",
            name=op.f("ck_notification_outbox_event_known"),
        ),
        sa.CheckConstraint(
            "attempts >= 0", name=op.f("ck_notification_outbox_attempts_non_negative")
        ),
        sa.CheckConstraint(
            "(state = 'delivered') = (delivered_at IS NOT NULL)",
            name=op.f("ck_notification_outbox_delivered_when_delivered"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notification_outbox"),
        sa.UniqueConstraint("idempotency_key", name="uq_notification_outbox_idempotency_key"),
        sa.UniqueConstraint("flow_run_id", "event", name="uq_notification_outbox_run_event"),
    )
    op.create_index(
        "ix_notification_outbox_queue",
        "notification_outbox",
        ["queued_at", "id"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_notification_outbox_delivered_at",
        "notification_outbox",
        ["delivered_at"],
        postgresql_where=sa.text("state = 'delivered'"),
    )


def downgrade() -> None:
    op.drop_table("notification_outbox")
