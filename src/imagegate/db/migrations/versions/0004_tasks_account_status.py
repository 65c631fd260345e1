"""an index on tasks (account, status): counting active tasks costs O(active), not O(history)

Revision ID: 0004_tasks_account_status
Revises: 0003_account_email
Create Date: 2026-12-02 07:30:00
"""

from alembic import op

revision = "0004_tasks_account_status"
down_revision = "0003_account_email"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_account_status", "tasks", ["account_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_tasks_account_status", table_name="tasks")
