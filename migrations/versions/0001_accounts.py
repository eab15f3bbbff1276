"""Virtual keys, key spend, the usage ledger and the keys' change counter.

Revision ID: 0001_accounts
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.accounts.models import BigId, UtcDateTime

revision = "0001_accounts"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        "accounts_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("keys_version", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(state, [{"id": 1, "keys_version": 0}])
    op.create_table(
        "virtual_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(200)),
        sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("secret_hint", sa.String(32), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("rpm", sa.Integer()),
        sa.Column("tpm", sa.Integer()),
        sa.Column("budget_usd", sa.Float()),
        sa.Column("budget_period", sa.String(8), nullable=False),
        sa.Column("expires_at", UtcDateTime()),
        sa.Column("metadata", sa.JSON()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime()),
    )
    op.create_table(
        "key_spend",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("period_start", UtcDateTime(), primary_key=True),
        sa.Column("spent_usd", sa.Float(), nullable=False),
    )
    op.create_table(
        "usage_ledger",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32)),
        sa.Column("subject", sa.String(255)),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64)),
        sa.Column("deployment", sa.String(128)),
        sa.Column("model", sa.String(255)),
        sa.Column("alias", sa.String(255)),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("priced", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("streamed", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_usage_ledger_time", "usage_ledger", ["time"])
    op.create_index("ix_usage_ledger_key_time", "usage_ledger", ["key_id", "time"])
    op.create_index("ix_usage_ledger_model_time", "usage_ledger", ["model", "time"])


def downgrade() -> None:
    op.drop_table("usage_ledger")
    op.drop_table("key_spend")
    op.drop_table("virtual_keys")
    op.drop_table("accounts_state")
