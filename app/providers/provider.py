"""A configured provider: where it lives, how it authenticates, and the upstream that reaches it.

`Provider.request()` is how every feature talks to a provider. Everything fixed about it is
decided once, when `Providers(settings)` is built at start-up:

    base URL       <ID>_API_URL (or the catalog's), parsed and quoted once
    headers        the credential by auth style, checked once (bearer: Authorization;
                   xheader: x-api-key; query: ?key=; none: nothing), and the catalog's extra
                   headers as defaults a caller may override (Anthropic's `anthropic-version`)
    configured     its key (none for auth type `none`) and, where the catalog URL is only an
                   example (Ollama), <ID>_API_URL (`Settings.provider_configured`)
    upstream       session (pool, TLS), proxy from the environment, client timeouts
                   (app.upstream), and the one exception map (502 / 504)
    model list     the reader for its kind: OpenAI's shape, or `quirks.MODEL_LISTS[kind]`

so a call only merges the caller's headers under the fixed ones (the credential cannot be
overridden) and sends. `id` is the provider's name in routes and model ids; `spec` is its
catalog kind. A catalog provider's id is its kind (`openai`); a deployment from the
configuration file (GATEWAY_CONFIG) has its own name (`openai-eu` of kind `openai`), URL, key
and extra headers, and is addressed like a provider everywhere (`openai-eu/gpt-4o`,
`/proxy/openai-eu/...`, `/v1/models`). A deployment named like a catalog provider replaces that
provider's settings. A declared deployment is always configured (a key is optional: an
OpenAI-compatible server may need none). Defaults are OpenAI passthrough; differences belong in
the catalog or in `quirks/<kind>.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests

from app.config import Settings
from app.config_file import Deployment
from app.errors import ProviderNotConfigured, UnknownProvider
from app.providers.catalog import CATALOG, ProviderSpec
from app.providers.model_entries import Entry, openai_models, unique
from app.providers.quirks import MODEL_LISTS
from app.upstream.proxies import ProxyRules
from app.upstream.sessions import build_upstream


class Provider:
    def __init__(self, spec: ProviderSpec, *, url: str, api_key: str, settings: Settings, name: str | None = None,
                 proxies: ProxyRules | None = None, configured: bool | None = None,
                 headers: Mapping[str, str] | None = None, declared: bool = False):
        """`configured`: whether its settings make it usable (default: it has a key, or needs none);
        `headers` are added to every call (with the credential, over the caller's); `declared`: a
        deployment from the configuration file, configured with or without a key."""
        self.spec = spec
        self.id = name or spec.id
        self.declared = declared
        self._api_key = api_key
        self._configured = declared or ((spec.auth_type == "none" or bool(api_key)) if configured is None
                                        else configured)
        self._defaults = dict(spec.extra_headers)  # under the caller's headers: e.g. its anthropic-version wins
        self._extra_headers = dict(headers or {})
        self.upstream = build_upstream(settings, f"provider {self.id}", url, headers=self._fixed_headers(),
                                       compress=not settings.client_disable_compression, rules=proxies)
        self.base_url = self.upstream.base_url
        self._auth_query = (("key", api_key),) if spec.auth_type == "query" and api_key else ()
        self._list_models: Callable[[Provider], list[Entry]] = MODEL_LISTS.get(spec.id, openai_models)

    def __repr__(self) -> str:
        return f"Provider({self.id!r}, configured={self.configured})"

    def _fixed_headers(self) -> dict[str, str]:
        headers = dict(self._extra_headers)
        if self.spec.auth_type == "bearer" and self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        elif self.spec.auth_type == "xheader" and self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    @property
    def configured(self) -> bool:
        return self._configured

    @property
    def key_env(self) -> str:
        """The setting that configures it: the deployment's api_key, its key, or its URL where the
        catalog URL is an example."""
        if self.declared:
            return f"deployments.{self.id}.api_key in GATEWAY_CONFIG"
        return f"{self.id.upper()}_API_URL" if self.spec.auth_type == "none" else f"{self.id.upper()}_API_KEY"

    def require_configured(self) -> None:
        if not self.configured:  # never for a declared deployment
            raise ProviderNotConfigured(
                f"Provider {self.id} is not configured: set {self.key_env} in the gateway's environment.")

    @property
    def session(self) -> requests.Session:
        return self.upstream.session

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                params: Any = None, stream: bool = True, **kwargs: Any) -> requests.Response:
        """Send to `base_url + path` with the provider's credential (added last, so it cannot be
        overridden). Returns once the headers are in; the body is read with `iter_body` / `read_body`
        (`stream` is accepted for compatibility: the body is never read here)."""
        if self._auth_query:
            params = [*_as_pairs(params), *self._auth_query]
        if self._defaults:
            headers = {**self._defaults, **headers} if headers else self._defaults
        return self.upstream.send(method, self.base_url + path, headers=headers, params=params, **kwargs)

    def iter_body(self, response: requests.Response, *, decode: bool = True) -> Iterator[bytes]:
        return self.upstream.iter_body(response, decode=decode)

    def read_body(self, response: requests.Response) -> bytes:
        return self.upstream.read_body(response)

    def list_models(self) -> list[Entry]:
        """This provider's models as gateway entries (`model_entries`), each id once; raises
        UpstreamError subclasses. The OpenAI list shape unless its kind has a `quirks.MODEL_LISTS` entry."""
        return unique(self._list_models(self))


def deployed(deployment: Deployment, settings: Settings, proxies: ProxyRules | None = None) -> Provider:
    """The Provider for a deployment of the configuration file."""
    return Provider(CATALOG[deployment.kind], url=deployment.base_url, api_key=deployment.api_key, settings=settings,
                    name=deployment.name, proxies=proxies, headers=deployment.headers, declared=True)


def _as_pairs(params: Any) -> Iterator[tuple[str, str]]:
    if not params:
        return
    yield from (params.items() if isinstance(params, Mapping) else params)


class Providers:
    """Every catalog provider, configured or not, and every deployment of the configuration file,
    by id (catalog order, then the file's); all built here, once. A deployment named like a
    catalog provider takes its place."""

    def __init__(self, settings: Settings):
        proxies = ProxyRules.from_environ()
        self._by_id = {
            pid: Provider(spec, url=settings.provider_urls[pid], api_key=settings.provider_keys[pid],
                          settings=settings, proxies=proxies, configured=settings.provider_configured(pid))
            for pid, spec in CATALOG.items()
        }
        for deployment in settings.deployments:
            self._by_id[deployment.name] = deployed(deployment, settings, proxies)

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
