"""webhooks: signing secrets per account, the delivery outbox and its attempts; tasks indexed by end

Revision ID: 0005
Revises: 0004_tasks_account_status
Create Date: 2026-12-04 07:10:00
"""

import sqlalchemy as sa
from alembic import op

import imagegate.db.models

revision = "0005"
down_revision = "0004_tasks_account_status"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", imagegate.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_until", imagegate.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", imagegate.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", imagegate.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_webhook_deliveries_task_id", "webhook_deliveries", ["task_id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", imagegate.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["webhook_deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id", "number", name="one_row_per_attempt"),
    )
    op.create_table(
        "webhook_secrets",
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column("previous_until", imagegate.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", imagegate.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id"),
    )
    # `imagegate listen` tails an account's task ends by (completed_at, id): no extra row per end.
    op.create_index("ix_tasks_account_completed", "tasks", ["account_id", "completed_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_account_completed", table_name="tasks")
    op.drop_table("webhook_secrets")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_deliveries_task_id", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
