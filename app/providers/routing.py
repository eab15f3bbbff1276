"""Which provider (or deployment) and upstream model a request means, and whether that model is allowed.

`Router.target(model, provider_param)` decides, in this order:

1. `?provider=X`: deployment X; a model written `X/...` is stripped, any other goes upstream as
   written (`resolve`);
2. an alias of the configuration file (`fast`, or even `openai/gpt-4o`: an alias takes the name
   over): an `Alias`, its ordered targets, built once at start-up;
3. the model's prefix up to the first `/` names the deployment and is stripped
   (`groq/meta-llama/llama-4` -> groq, `meta-llama/llama-4`) (`resolve`);
4. the endpoint's own rule for a bare model name, asked last (`Endpoint.bare_models`: on the
   Anthropic Messages API a bare `claude-*` model is Anthropic's);
5. else 400: no guessing from bare names.

A plain request gets one `Route`; retries, fallbacks and the alias strategies are
app/resilience's. Allow/deny lists (`ModelPolicy`) are checked against the canonical id
`provider/upstream-model`, and for an alias against its own name and each target's id
(app/chat/dispatch.py calls them); an entry that names a provider matches that provider only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.config_file import AliasSettings
from app.errors import InvalidRequest, PermissionDenied
from app.providers.catalog import CATALOG
from app.providers.provider import Provider, Providers


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    model: str  # as the provider knows it

    @property
    def model_id(self) -> str:
        """The canonical gateway id, `provider/model`."""
        return f"{self.provider.id}/{self.model}"


@dataclass(frozen=True, slots=True)
class Alias:
    """A model name the gateway owns: its targets in the configured order, and how to pick."""

    name: str
    strategy: str  # fallback | round_robin | least_busy
    routes: tuple[Route, ...]


def aliases_from(settings: Mapping[str, AliasSettings], providers: Providers) -> dict[str, Alias]:
    """The configuration file's aliases with their targets as Routes (checked at start-up)."""
    return {name: Alias(name, alias.strategy, tuple(Route(providers.lookup(deployment), model)
                                                   for deployment, model in alias.targets))
            for name, alias in settings.items()}


class Router:
    """Routes a request's model to a Route or an Alias (see the module docstring for the order)."""

    def __init__(self, providers: Providers, aliases: Mapping[str, Alias]):
        self.providers = providers
        self.aliases = dict(aliases)

    def target(self, model: str, provider_param: str | None, *, bare: str | None = None) -> Route | Alias:
        """`bare`: the provider this endpoint gives a model named without `provider/` (step 4)."""
        if provider_param:
            return resolve(model, provider_param, self.providers)
        alias = self.aliases.get(model) if self.aliases else None
        if alias is not None:
            return alias
        return resolve(model, None, self.providers, bare=bare)


def resolve(model: str, provider_param: str | None, providers: Providers, *, bare: str | None = None) -> Route:
    """Route a request; raises UnknownProvider / ProviderNotConfigured / InvalidRequest.

    `bare` is the provider a model named without `provider/` goes to on this endpoint (the
    endpoint's rule: a `claude-*` model on /v1/messages is Anthropic's), asked last."""
    if provider_param:
        provider = providers.lookup(provider_param.strip().lower())
        prefix, sep, rest = model.partition("/")
        upstream = rest if sep and prefix.lower() == provider.id and rest else model
    else:
        prefix, sep, rest = model.partition("/")
        if not sep and bare:
            provider = providers.lookup(bare)
            provider.require_configured()
            return Route(provider, model)
        if not sep or not rest:
            raise InvalidRequest(
                f"Cannot tell which provider serves model {model!r}: name it as provider/model "
                f"(e.g. openai/gpt-4o) or add ?provider=<id>.", code="unknown_provider")
        provider = providers.lookup(prefix.strip().lower())
        upstream = rest
    provider.require_configured()
    return Route(provider, upstream)


class ModelPolicy:
    """ALLOWED_MODELS / DISALLOWED_MODELS, case-insensitive.

    An entry whose prefix up to the first `/` names a provider (`openai/gpt-4o-mini`) matches that
    provider's model only: not `deepseek/openai/gpt-4o-mini`, nor `openai/gpt-4o-mini` sent with
    `?provider=deepseek` (both have the id `deepseek/openai/gpt-4o-mini`). Any other entry is bare
    (`gpt-4o-mini`, `meta-llama/llama-4`) and matches the model part of any provider's id. The
    provider ids are the catalog's unless given (named deployments pass theirs).
    """

    def __init__(self, allowed: Iterable[str], disallowed: Iterable[str], *, providers: Iterable[str] | None = None):
        self.provider_ids = frozenset(p.lower() for p in (CATALOG if providers is None else providers))
        self.allowed = Entries(allowed, self.provider_ids)
        self.disallowed = Entries(disallowed, self.provider_ids)

    @property
    def active(self) -> bool:
        """A list is set: every model a request calls must be checked (app.proxy refuses what it cannot check)."""
        return bool(self.allowed or self.disallowed)

    def allows(self, model_id: str) -> bool:
        if self.allowed:
            return self.allowed.match(model_id)
        return not self.disallowed.match(model_id)

    def check(self, model_id: str) -> None:
        if not self.allows(model_id):
            raise PermissionDenied(f"Model {model_id} is not allowed on this gateway.", code="model_not_allowed")


class Entries:
    """A list of model entries as `ModelPolicy` reads them (virtual keys' `models` lists too)."""

    __slots__ = ("bare", "scoped")

    def __init__(self, entries: Iterable[str], provider_ids: Iterable[str]):
        providers = frozenset(provider_ids)
        self.scoped: set[tuple[str, str]] = set()
        self.bare: set[str] = set()
        for entry in entries:
            lowered = entry.strip().lower()
            if not lowered:
                continue
            prefix, sep, rest = lowered.partition("/")
            if sep and rest and prefix in providers:
                self.scoped.add((prefix, rest))
            else:
                self.bare.add(lowered)

    def __bool__(self) -> bool:
        return bool(self.scoped or self.bare)

    def match(self, model_id: str) -> bool:
        """`model_id` is `provider/model`, the provider as routed."""
        provider, sep, model = model_id.strip().lower().partition("/")
        if not sep:
            return provider in self.bare
        return (provider, model) in self.scoped or model in self.bare
