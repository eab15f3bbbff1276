"""The usage ledger says which rows carry the gateway's estimate rather than the provider's count.

Revision ID: 0002_usage_estimated
Revises: 0001_accounts
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_usage_estimated"
down_revision = "0001_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_ledger") as table:  # SQLite adds a column through a batch too
        table.add_column(sa.Column("estimated", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("usage_ledger") as table:
        table.drop_column("estimated")
