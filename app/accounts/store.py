"""Virtual keys in the database: create (the secret once), read, change, revoke.

    KeyStore(database, now)         `now` is the wall clock (injectable)
    store.create(fields)            -> (VirtualKey row, secret "sk-gw-...")
    store.get(id) / store.all()     rows (404 is the caller's: None when unknown)
    store.update(id, fields) / store.revoke(id)
    store.version()                 the keys' change counter (accounts_state.keys_version)
    store.active_records()          what the per-worker KeyCache holds: KeyRecord per live key

Every write raises `keys_version` in the same transaction, so each worker's cache sees the change on
its next poll (key_cache.py).

The secret is 32 random bytes (256 bits) from `secrets`, and only its SHA-256 is stored. A fast
hash is right here: slow hashes (bcrypt, argon2) protect low-entropy passwords from guessing, and
nobody can guess through 2^256 secrets; a fast hash keeps the per-request lookup to one dict hit.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from app.accounts.budgets import period_window
from app.accounts.database import Database
from app.accounts.models import AccountsState, KeySpend, UsageRecord, VirtualKey

SECRET_PREFIX = "sk-gw-"
SUBJECT_PREFIX = "vkey:"
EDITABLE = ("name", "owner", "models", "rpm", "tpm", "budget_usd", "budget_period", "expires_at", "meta")


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A live key as each worker holds it in memory."""

    id: str
    name: str
    models: frozenset[str]  # lower-cased; empty: every model the gateway allows
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period: str
    expires_at: float | None  # epoch seconds

    @property
    def subject(self) -> str:
        return SUBJECT_PREFIX + self.id

    @classmethod
    def of(cls, row: VirtualKey) -> KeyRecord:
        return cls(id=row.id, name=row.name, models=frozenset(m.strip().lower() for m in row.models or ()),
                   rpm=row.rpm, tpm=row.tpm, budget_usd=row.budget_usd, budget_period=row.budget_period,
                   expires_at=row.expires_at.timestamp() if row.expires_at else None)


class KeyStore:
    def __init__(self, database: Database, now: Callable[[], datetime] = utcnow):
        self.database = database
        self.now = now

    # -- reads ---------------------------------------------------------------------------------
    def version(self) -> int:
        with self.database.session() as session:
            return session.scalar(select(AccountsState.keys_version).where(AccountsState.id == 1)) or 0

    def active_records(self) -> tuple[int, dict[str, KeyRecord], dict[str, str]]:
        """(version, records by id, id by secret digest) of every key not revoked, in one transaction."""
        with self.database.session() as session:
            version = session.scalar(select(AccountsState.keys_version).where(AccountsState.id == 1)) or 0
            rows = session.scalars(select(VirtualKey).where(VirtualKey.revoked_at.is_(None))).all()
        return version, {row.id: KeyRecord.of(row) for row in rows}, {row.secret_sha256: row.id for row in rows}

    def get(self, key_id: str) -> VirtualKey | None:
        with self.database.session() as session:
            return session.get(VirtualKey, key_id)

    def all(self) -> list[VirtualKey]:
        with self.database.session() as session:
            return list(session.scalars(select(VirtualKey).order_by(VirtualKey.created_at.desc(), VirtualKey.id)))

    def spent(self, row: VirtualKey) -> float:
        """This key's spend in its budget period (exact for keys with a budget, else from the ledger)."""
        start, _ = period_window(row.budget_period, self.now())
        with self.database.session() as session:
            if row.budget_usd is not None:
                found = session.scalar(select(KeySpend.spent_usd).where(
                    KeySpend.key_id == row.id, KeySpend.period == row.budget_period, KeySpend.period_start == start))
                if found is not None:
                    return found
            return _ledger_spend(session, row.id, start)

    # -- writes --------------------------------------------------------------------------------
    def create(self, fields: Mapping[str, Any]) -> tuple[VirtualKey, str]:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        now = self.now()
        row = VirtualKey(id="key_" + secrets.token_hex(8), secret_sha256=secret_digest(secret),
                         secret_hint=f"{secret[:9]}...{secret[-4:]}", created_at=now, updated_at=now,
                         models=[], budget_period="month")
        for name in EDITABLE:
            if name in fields:
                setattr(row, name, fields[name])
        with self.database.session() as session:
            session.add(row)
            session.flush()
            self._bump(session)
        return row, secret

    def update(self, key_id: str, fields: Mapping[str, Any]) -> VirtualKey | None:
        with self.database.session() as session:
            row = session.get(VirtualKey, key_id)
            if row is None:
                return None
            if row.revoked_at is not None:
                raise KeyRevoked(row)
            budget_changed = any(name in fields for name in ("budget_usd", "budget_period"))
            for name in EDITABLE:
                if name in fields:
                    setattr(row, name, fields[name])
            row.updated_at = self.now()
            if budget_changed and row.budget_usd is not None:
                self._seed_spend(session, row)
            self._bump(session)
        return row

    def revoke(self, key_id: str) -> VirtualKey | None:
        with self.database.session() as session:
            row = session.get(VirtualKey, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = row.updated_at = self.now()
                self._bump(session)
        return row

    @staticmethod
    def _bump(session: Any) -> None:
        session.execute(update(AccountsState).where(AccountsState.id == 1)
                        .values(keys_version=AccountsState.keys_version + 1))

    def _seed_spend(self, session: Any, row: VirtualKey) -> None:
        """A budget set or moved to another period starts from what the ledger already holds."""
        start, _ = period_window(row.budget_period, self.now())
        spent = _ledger_spend(session, row.id, start)
        existing = session.get(KeySpend, (row.id, row.budget_period, start))
        if existing is None:
            session.add(KeySpend(key_id=row.id, period=row.budget_period, period_start=start, spent_usd=spent))
        else:
            existing.spent_usd = max(existing.spent_usd, spent)


class KeyRevoked(Exception):
    def __init__(self, row: VirtualKey):
        super().__init__(row.id)
        self.row = row


def _ledger_spend(session: Any, key_id: str, since: datetime) -> float:
    return session.scalar(select(func.coalesce(func.sum(UsageRecord.cost_usd), 0.0))
                          .where(UsageRecord.key_id == key_id, UsageRecord.time >= since)) or 0.0
