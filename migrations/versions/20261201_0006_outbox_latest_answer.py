"""The outbox's latest delivery, indexed: Augur's Retry-After holds across passes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Every delivery attempt sets its row's ``queued_at``, whatever the outcome, and keeps what Augur
answered in the row's history, a ``Retry-After`` as ``retry_at``. The senders of the outbox (the
dispatcher, the standing passes) ask the latest answer, over every row, before they send
(``OutboxRepository.asked_to_wait``): this index on ``queued_at`` answers it without reading
the table. No grant changes: an index needs none.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_notification_outbox_queued_at"), "notification_outbox", ["queued_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notification_outbox_queued_at"), table_name="notification_outbox")
