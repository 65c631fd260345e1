"""tasks: every provider attempt (JSON) and the upstream cost in micro-dollars

Revision ID: 0006_task_attempts_upstream_cost
Revises: 0005
Create Date: 2026-12-04 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_task_attempts_upstream_cost"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("provider_attempts", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("upstream_cost_micro", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("upstream_cost_micro")
        batch.drop_column("provider_attempts")
