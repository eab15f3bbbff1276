"""The usage ledger keeps a failed request's error message (secrets redacted), for the console.

Revision ID: 0003_usage_error
Revises: 0002_usage_estimated
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_usage_error"
down_revision = "0002_usage_estimated"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_ledger") as table:  # SQLite adds a column through a batch too
        table.add_column(sa.Column("error", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_ledger") as table:
        table.drop_column("error")
