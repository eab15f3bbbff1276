"""The accounts feature, as `app.accounts.init_app` wires it into one app.

    Accounts.enforce()     before_request, after auth: the virtual key's record, its proxy rule and
                           limits (budget, tpm, rpm); a revoked key is refused here too
    Accounts.on_usage(...) `completion_usage` receiver: price the call and charge the key's tokens
                           and spend at once. That is before the client has the whole answer (a
                           plain answer is sent after; a stream's last chunk is written after its
                           relay ends), so its next request sees the charge.
    Accounts.settle(...)   as the response closes (UsageRecorder): give the access line its facts,
                           queue the ledger row with the spend the database must still store,
                           count the cost
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, request

from app import signals
from app.access_log import REQUEST_ID_ENVIRON_KEY
from app.accounts.key_admin import KeyAdmin
from app.accounts.key_cache import KeyCache
from app.accounts.key_limits import KeyLimits
from app.accounts.ledger import LedgerWriter
from app.accounts.model_access import KEY_RECORD_KEY
from app.accounts.models import ERROR_LENGTH
from app.accounts.prices import PriceTable
from app.accounts.recorder import Outcome
from app.accounts.store import SUBJECT_PREFIX, KeyStore
from app.accounts.tally import CURRENT, Tally, call_of
from app.auth.admin_key import AdminKey
from app.auth.virtual_keys import VirtualKeyCredentials
from app.errors import AuthenticationFailed, PermissionDenied

log = logging.getLogger("gateway.accounts")

EXTENSION_KEY = "gateway.accounts"
# Blueprints a virtual key never reaches: public ones, and the admin API (its own credential).
UNCHECKED_BLUEPRINTS = frozenset({"health", "admin"})
PROXY_BLUEPRINT = "proxy"  # app/api/proxy.py: reaches any provider endpoint, which a model list cannot bound
# Credentials a provider's error message may quote (OpenAI-style `sk-...` keys, a bearer token).
TOKEN_SHAPES = re.compile(r"\b(?:sk|pk|rk|gsk|xai)-[A-Za-z0-9_*.-]{6,}|(?i:bearer)\s+\S+")


def accounts() -> Accounts:
    return current_app.extensions[EXTENSION_KEY]


class Accounts:
    def __init__(self, app: Flask, store: KeyStore, cache: KeyCache, limits: KeyLimits, prices: PriceTable,
                 writer: LedgerWriter, credentials: VirtualKeyCredentials, admin_key: AdminKey, *,
                 auth_enabled: bool, redact: Callable[[str], str] = str):
        """`redact` takes the configured secrets out of a failed request's error before the ledger keeps it."""
        self.app = app
        self.store = store
        self.cache = cache
        self.limits = limits
        self.prices = prices
        self.writer = writer
        self.credentials = credentials
        self.admin_key = admin_key
        self.admin = KeyAdmin(store, auth_enabled=auth_enabled)
        self.auth_enabled = auth_enabled
        self.redact = redact

    # -- before the request --------------------------------------------------------------------
    def enforce(self) -> None:
        if request.blueprint in UNCHECKED_BLUEPRINTS:
            return
        subject = request.environ.get(signals.SUBJECT_KEY)
        if not subject or not subject.startswith(SUBJECT_PREFIX):
            return
        record = self.cache.record(subject[len(SUBJECT_PREFIX):])
        if record is None:
            raise AuthenticationFailed("invalid credential")
        request.environ[KEY_RECORD_KEY] = record
        request.environ[signals.KEY_NAME_KEY] = record.name
        tally = CURRENT.get()
        if tally is not None:
            tally.record = record
        if record.models and request.blueprint == PROXY_BLUEPRINT:
            raise PermissionDenied(f"Key {record.name!r} is limited to named models and cannot use /proxy.",
                                   code="model_not_allowed")
        self.limits.check(record)

    # -- when a model call reports its usage ---------------------------------------------------
    def on_usage(self, sender: Any, *, provider: str | None = None, model: str | None = None, usage: Any = None,
                 stream: bool = False, **_: Any) -> None:
        tally = CURRENT.get()
        if tally is None or not isinstance(usage, dict):
            return
        call = call_of(provider, model, usage, bool(stream))
        found = self.prices.cost(provider, model, call.prompt_tokens, call.completion_tokens)
        call.cost_usd, call.priced = found.usd, found.priced
        tally.calls.append(call)
        if tally.record is not None:
            delta = self.limits.charge(tally.record, call.total_tokens, call.cost_usd, datetime.now(UTC))
            if delta is not None:
                tally.deltas.append(delta)

    def error_of(self, environ: dict[str, Any]) -> str | None:
        """The failed request's error message as the ledger keeps it: the configured secrets and
        anything shaped like a key or a bearer token redacted, on one line, at most ERROR_LENGTH."""
        message = environ.get(signals.ERROR_KEY)
        if not message:
            return None
        text = TOKEN_SHAPES.sub("[REDACTED]", self.redact(" ".join(str(message).split())))
        return text if len(text) <= ERROR_LENGTH else text[:ERROR_LENGTH - 1] + "…"

    # -- when the response closes --------------------------------------------------------------
    def settle(self, environ: dict[str, Any], tally: Tally, outcome: Outcome) -> None:
        provider = environ.get(signals.PROVIDER_KEY)
        if provider is None and not tally.calls:
            return  # not a model call
        record = tally.record
        cost = tally.cost_usd
        last = tally.calls[-1] if tally.calls else None
        model = last.model if last else environ.get(signals.MODEL_KEY)
        provider = (last.provider if last else None) or provider
        if last is None:
            priced = self.prices.price(provider, model) is not None
        else:
            priced = all(call.priced for call in tally.calls)
        prompt, completion, total = tally.prompt_tokens, tally.completion_tokens, tally.total_tokens
        subject = environ.get(signals.SUBJECT_KEY)
        estimated = any(call.estimated for call in tally.calls)
        if tally.calls:
            environ[signals.USAGE_KEY] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                          "total_tokens": total, "cost_usd": round(cost, 8)}
            if estimated:
                environ[signals.USAGE_KEY]["estimated"] = True
        self.writer.add({
            "time": outcome.started,
            "request_id": str(environ.get(REQUEST_ID_ENVIRON_KEY) or "-")[:128],
            "key_id": record.id if record is not None else None,
            "subject": str(subject)[:255] if subject else None,
            "endpoint": str(environ.get("PATH_INFO") or "")[:255],
            "provider": provider,
            "deployment": provider,  # a deployment is its provider until named deployments exist (issue 15)
            "model": model[:255] if model else None,
            "alias": None,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": total,
            "cost_usd": cost,
            "priced": priced,
            "status": outcome.status,
            "latency_ms": round(outcome.latency_ms, 3),
            "streamed": outcome.event_stream or any(call.stream for call in tally.calls),
            "estimated": estimated,
            "error": self.error_of(environ) if outcome.status >= 400 else None,
        }, tally.deltas)
        if tally.calls and signals.usage_recorded.receivers:
            signals.usage_recorded.send(self.app, provider=provider or "unknown", model=model or "unknown",
                                        key_name=record.name if record is not None else "", cost_usd=cost,
                                        total_tokens=total)
