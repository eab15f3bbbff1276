"""A configured provider: where it lives, how it authenticates, and its HTTP session.

`Provider.request()` is how every feature talks to a provider: it adds the catalog's extra
headers and the provider's credential by its auth style, applies the client timeouts, and maps
failures through `transport`. The session is built on first use, after gevent has patched.
Defaults are OpenAI passthrough; differences belong in the catalog or in `quirks/<id>.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import requests

from app.config import Settings
from app.errors import ProviderNotConfigured, UnknownProvider
from app.providers.catalog import CATALOG, ProviderSpec
from app.upstream import transport


class Provider:
    def __init__(self, spec: ProviderSpec, *, url: str, api_key: str, settings: Settings):
        self.spec = spec
        self.id = spec.id
        self.base_url = url.rstrip("/")
        self._api_key = api_key
        self._settings = settings
        self._session: requests.Session | None = None
        # connect bound, then the longest gap between bytes (never the whole response)
        self.timeout = (min(settings.client_response_header_timeout, settings.client_timeout) or None,
                        settings.client_timeout or None)

    def __repr__(self) -> str:
        return f"Provider({self.id!r}, configured={self.configured})"

    @property
    def configured(self) -> bool:
        return self.spec.auth_type == "none" or bool(self._api_key)

    @property
    def key_env(self) -> str:
        return f"{self.id.upper()}_API_KEY"

    def require_configured(self) -> None:
        if not self.configured:
            raise ProviderNotConfigured(
                f"Provider {self.id} is not configured: set {self.key_env} in the gateway's environment.")

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = transport.build_session(
                pools=self._settings.client_max_idle_conns,
                pool_size=self._settings.client_max_idle_conns_per_host,
                min_tls=self._settings.client_tls_min_version,
                disable_compression=self._settings.client_disable_compression,
            )
        return self._session

    def url(self, path: str) -> str:
        return self.base_url + path

    def auth_headers(self) -> dict[str, str]:
        headers = dict(self.spec.extra_headers)
        if self.spec.auth_type == "bearer" and self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        elif self.spec.auth_type == "xheader" and self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def auth_params(self) -> dict[str, str]:
        return {"key": self._api_key} if self.spec.auth_type == "query" and self._api_key else {}

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                params: Any = None, stream: bool = True, **kwargs: Any) -> requests.Response:
        """Send to `base_url + path` with the provider's credential (added last, so it cannot be overridden)."""
        merged = dict(headers or {})
        merged.update(self.auth_headers())
        query = self.auth_params()
        if query:
            params = list(_as_pairs(params)) + list(query.items())
        return transport.send(self.session, method, self.url(path), provider=self.id, headers=merged,
                              params=params, stream=stream, timeout=self.timeout, **kwargs)

    def iter_body(self, response: requests.Response, *, decode: bool = True) -> Iterator[bytes]:
        return transport.iter_body(response, provider=self.id, decode=decode)

    def read_body(self, response: requests.Response) -> bytes:
        return transport.read_body(response, provider=self.id)

    def list_models(self) -> list[dict[str, Any]]:
        """This provider's models as gateway entries (`model_entries`); raises UpstreamError subclasses.

        The OpenAI list shape by default; a provider with its own shape has a `quirks.MODEL_LISTS` entry.
        """
        # imported here: quirk modules may import this module
        from app.providers.model_entries import openai_models
        from app.providers.quirks import MODEL_LISTS

        return MODEL_LISTS.get(self.id, openai_models)(self)


def _as_pairs(params: Any) -> Iterator[tuple[str, str]]:
    if not params:
        return
    yield from (params.items() if isinstance(params, Mapping) else params)


class Providers:
    """Every catalog provider, configured or not, by id."""

    def __init__(self, settings: Settings):
        self._by_id = {
            pid: Provider(spec, url=settings.provider_urls[pid], api_key=settings.provider_keys[pid], settings=settings)
            for pid, spec in CATALOG.items()
        }

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._by_id.values())

    def __contains__(self, pid: object) -> bool:
        return pid in self._by_id

    def lookup(self, pid: str) -> Provider:
        try:
            return self._by_id[pid]
        except KeyError:
            raise UnknownProvider(
                f"Unknown provider {pid!r}. Known providers: {', '.join(self._by_id)}.") from None

    def configured(self) -> list[Provider]:
        return [p for p in self if p.configured]
