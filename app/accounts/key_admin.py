"""What the admin API and the CLI do with keys and usage, as JSON-ready dicts.

    admin.create(fields)      -> the key, with its `secret` (the only time it is shown)
    admin.list() / admin.get(id) / admin.update(id, fields) / admin.revoke(id)
    admin.usage(query)        -> Report (reports.py)

Unknown ids raise NotFound (404); changing a revoked key, or an `expires_at` in the past, is an
InvalidRequest (400). A key's `spend` is for its budget period (`month` unless set): exact for a
key with a budget, from the ledger otherwise (which lags by up to USAGE_FLUSH_INTERVAL).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from app.accounts.budgets import iso, period_window
from app.accounts.models import VirtualKey
from app.accounts.reports import Report, UsageQuery, usage_report
from app.accounts.store import KeyRevoked, KeyStore
from app.errors import InvalidRequest, NotFound

log = logging.getLogger("gateway.accounts")

AUTH_OFF_WARNING = ("AUTH_ENABLE=false: this gateway asks no client for a credential, so this key's models, limits "
                    "and budget apply to nobody until AUTH_ENABLE=true.")


class KeyAdmin:
    def __init__(self, store: KeyStore, *, auth_enabled: bool, now: Callable[[], datetime] | None = None):
        self.store = store
        self.auth_enabled = auth_enabled
        self.now = now or store.now

    def describe(self, row: VirtualKey) -> dict[str, Any]:
        now = self.now()
        if row.revoked_at is not None:
            status = "revoked"
        elif row.expires_at is not None and row.expires_at <= now:
            status = "expired"
        else:
            status = "active"
        start, reset = period_window(row.budget_period, now)
        spent = self.store.spent(row)
        spend = {"period": row.budget_period, "period_start": iso(start), "resets_at": iso(reset),
                 "spent_usd": round(spent, 8)}
        if row.budget_usd is not None:
            spend["remaining_usd"] = round(max(0.0, row.budget_usd - spent), 8)
        return {"id": row.id, "object": "virtual_key", "name": row.name, "owner": row.owner, "status": status,
                "secret_hint": row.secret_hint, "models": list(row.models or []), "rpm": row.rpm, "tpm": row.tpm,
                "budget_usd": row.budget_usd, "budget_period": row.budget_period, "expires_at": iso(row.expires_at),
                "metadata": row.meta, "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
                "revoked_at": iso(row.revoked_at), "spend": spend}

    def _check_expiry(self, fields: Mapping[str, Any]) -> None:
        expires = fields.get("expires_at")
        if expires is not None and expires <= self.now():
            raise InvalidRequest("Invalid request: expires_at: must be in the future.", code="invalid_request")

    def create(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        self._check_expiry(fields)
        row, secret = self.store.create(fields)
        log.info("virtual key created", extra={"key_id": row.id, "key_name": row.name})
        answer = {**self.describe(row), "secret": secret}
        if not self.auth_enabled:
            answer["warning"] = AUTH_OFF_WARNING
        return answer

    def list(self) -> list[dict[str, Any]]:
        return [self.describe(row) for row in self.store.all()]

    def get(self, key_id: str) -> dict[str, Any]:
        row = self.store.get(key_id)
        if row is None:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        return self.describe(row)

    def update(self, key_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        self._check_expiry(fields)
        try:
            row = self.store.update(key_id, fields)
        except KeyRevoked:
            raise InvalidRequest(f"Key {key_id!r} is revoked; a revoked key cannot be changed.",
                                 code="key_revoked") from None
        if row is None:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        log.info("virtual key changed", extra={"key_id": row.id, "fields": sorted(fields)})
        return self.describe(row)

    def revoke(self, key_id: str) -> dict[str, Any]:
        row = self.store.revoke(key_id)
        if row is None:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        log.info("virtual key revoked", extra={"key_id": row.id})
        return self.describe(row)

    def usage(self, query: UsageQuery) -> Report:
        return usage_report(self.store.database, query)
