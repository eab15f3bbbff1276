"""The tables (SQLAlchemy 2 declarative). Alembic's migrations in `migrations/` create them.

    accounts_state  one row: `keys_version`, raised by every change to a key, so each worker's key
                    cache knows with one tiny query whether it must reload (see key_cache.py)
    virtual_keys    a key's settings and the SHA-256 of its secret (never the secret)
    key_spend       spend per key, budget period and period start (kept for keys with a budget)
    usage_ledger    one row per request that called a model (completion, embedding, proxied call);
                    `estimated` when its tokens are the gateway's estimate; `error`, the message
                    of a failed one

Times are stored as naive UTC and come back as aware UTC datetimes on every database (`UtcDateTime`).
Money is a float of US dollars: the ledger reports, it does not invoice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, String, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

BUDGET_PERIODS = ("day", "month", "total")
ERROR_LENGTH = 500


class UtcDateTime(TypeDecorator):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


class Base(DeclarativeBase):
    pass


class AccountsState(Base):
    __tablename__ = "accounts_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    keys_version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class VirtualKey(Base):
    __tablename__ = "virtual_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    owner: Mapped[str | None] = mapped_column(String(200))
    secret_sha256: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    secret_hint: Mapped[str] = mapped_column(String(32), nullable=False)
    models: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    budget_usd: Mapped[float | None] = mapped_column(Float)
    budget_period: Mapped[str] = mapped_column(String(8), nullable=False, default="month")
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class KeySpend(Base):
    __tablename__ = "key_spend"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    spent_usd: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)


class UsageRecord(Base):
    __tablename__ = "usage_ledger"
    __table_args__ = (
        Index("ix_usage_ledger_time", "time"),
        Index("ix_usage_ledger_key_time", "key_id", "time"),
        Index("ix_usage_ledger_model_time", "model", "time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    request_id: Mapped[str] = mapped_column(String(128), nullable=False)
    key_id: Mapped[str | None] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(255))
    endpoint: Mapped[str] = mapped_column(String(255), nullable=False)
    provider: Mapped[str | None] = mapped_column(String(64))
    deployment: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(255))
    alias: Mapped[str | None] = mapped_column(String(255))
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    priced: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    streamed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # the tokens are the gateway's estimate (a cut stream, an answer without usage: app/chat/estimate.py)
    estimated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # a failed request's error message, secrets redacted, at most ERROR_LENGTH characters (the console's
    # recent errors); None for a success
    error: Mapped[str | None] = mapped_column(String(ERROR_LENGTH))
