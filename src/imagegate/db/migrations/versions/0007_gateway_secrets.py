"""gateway_secrets: keys every replica must share (the URL-signing key), made once by the first

Revision ID: 0007_gateway_secrets
Revises: 0006_task_attempts_upstream_cost
Create Date: 2026-12-04 07:20:00
"""

import sqlalchemy as sa
from alembic import op

import imagegate.db.models

revision = "0007_gateway_secrets"
down_revision = "0006_task_attempts_upstream_cost"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", imagegate.db.models.UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_secrets")
