"""The gateway's model list: every configured provider asked at once, merged, filtered, cached.

    lists = ModelLists(settings, policy)
    lists.one(provider)        -> that provider's entries; its failure raises (502 / 504 / its own status)
    lists.every(providers)     -> Merged(data, failed): the aliases of the configuration file, then
                                  every provider's (and deployment's) models; the providers that
                                  failed are left out and named

`every` asks the providers concurrently (a `ThreadPoolExecutor`: greenlets under the gevent
worker, real threads elsewhere), so it takes as long as the slowest provider, and never longer
than one provider's timeout budget (CLIENT_RESPONSE_HEADER_TIMEOUT for the headers, then
CLIENT_TIMEOUT, with a little slack): a provider stuck anywhere, name resolution included, is
left out as timed out when the budget runs out.

Each provider's list is cached in this process for MODELS_CACHE_TTL (0 turns the cache off);
a failure is never cached. The cache holds what the provider sent; ALLOWED_MODELS /
DISALLOWED_MODELS filter on the way out. An alias is listed (`owned_by` and `served_by`
"gateway") when its name is allowed and at least one of its targets is; a provider's model with
the same id as an alias is left out (the alias takes the name).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from flask import Flask, current_app

from app.config import Settings
from app.errors import GatewayError
from app.providers.model_entries import Entry
from app.providers.provider import Provider
from app.providers.routing import ModelPolicy
from app.upstream.transport import waiting_for_providers

EXTENSION_KEY = "model_lists"
# Beyond the timeouts themselves, before a provider that has not answered is given up on.
BUDGET_SLACK = 1.0

log = logging.getLogger("gateway.models")


@dataclass(frozen=True)
class Merged:
    data: list[Entry]
    failed: list[str]  # ids of the providers left out, in catalog order


class ModelLists:
    def __init__(self, settings: Settings, policy: ModelPolicy):
        self.ttl = float(settings.models_cache_ttl)
        headers = settings.client_response_header_timeout or settings.client_timeout
        self.budget = headers + settings.client_timeout + BUDGET_SLACK if headers and settings.client_timeout else None
        self.policy = policy
        self.aliases = settings.aliases
        self._cache: dict[str, tuple[float, list[Entry]]] = {}
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self

    def one(self, provider: Provider) -> list[Entry]:
        return self._allowed(self._fetch(provider))

    def every(self, providers: Iterable[Provider]) -> Merged:
        providers = list(providers)
        lists = {p.id: found for p in providers if (found := self._cached(p.id)) is not None}
        missing = [p for p in providers if p.id not in lists]
        failed: set[str] = set()
        if missing:
            executor = ThreadPoolExecutor(max_workers=len(missing), thread_name_prefix="models")
            try:
                futures = {executor.submit(self._fetch, p): p for p in missing}
                with waiting_for_providers():
                    wait(futures, timeout=self.budget)
            finally:
                executor.shutdown(wait=False, cancel_futures=True)  # a straggler finishes (and caches) alone
            for future, provider in futures.items():
                if not future.done():
                    _left_out(provider, f"no complete answer within {self.budget:g}s")
                elif (error := future.exception()) is not None:
                    _left_out(provider, error.message if isinstance(error, GatewayError) else None, error)
                else:
                    lists[provider.id] = future.result()
                    continue
                failed.add(provider.id)
        aliases = self.alias_entries()
        taken = {entry["id"] for entry in aliases}
        data = aliases + [model for p in providers if p.id in lists for model in self._allowed(lists[p.id])
                          if model["id"] not in taken]
        return Merged(data, [p.id for p in providers if p.id in failed])

    def alias_entries(self) -> list[Entry]:
        """The configuration file's aliases a caller may use, as model entries."""
        allows = self.policy.allows
        return [{"id": name, "object": "model", "created": 0, "owned_by": "gateway", "served_by": "gateway"}
                for name, alias in self.aliases.items()
                if allows(name) and any(allows(f"{deployment}/{model}") for deployment, model in alias.targets)]

    def _fetch(self, provider: Provider) -> list[Entry]:
        cached = self._cached(provider.id)
        if cached is not None:
            return cached
        models = provider.list_models()
        if self.ttl > 0:
            with self._lock:
                self._cache[provider.id] = (time.monotonic() + self.ttl, models)
        return models

    def _cached(self, provider_id: str) -> list[Entry] | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            found = self._cache.get(provider_id)
        return found[1] if found and found[0] > time.monotonic() else None

    def _allowed(self, models: list[Entry]) -> list[Entry]:
        return [m for m in models if self.policy.allows(m["id"])]


def _left_out(provider: Provider, reason: str | None, error: BaseException | None = None) -> None:
    extra = {"provider": provider.id}
    if reason is None:  # not a GatewayError: a bug in reading the list, so keep the traceback
        log.error("left %s out of the model list: unexpected error", provider.id, exc_info=error, extra=extra)
    else:
        log.warning("left %s out of the model list: %s", provider.id, reason, extra=extra)


def model_lists() -> ModelLists:
    return current_app.extensions[EXTENSION_KEY]
