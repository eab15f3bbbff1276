"""Which provider (or deployment) and upstream model a request means, and whether that model is allowed.

`Router.target(model, provider_param)` decides, in this order:

1. `?provider=X`: deployment X; a model written `X/...` is stripped, any other goes upstream as
   written (`resolve`);
2. an alias of the configuration file (`fast`, or even `openai/gpt-4o`: an alias takes the name
   over): an `Alias`, its ordered targets, built once at start-up;
3. the model's prefix up to the first `/` names the deployment and is stripped
   (`groq/meta-llama/llama-4` -> groq, `meta-llama/llama-4`) (`resolve`);
4. (the place for an endpoint's own rule for bare model names, e.g. `claude-*` on /v1/messages);
5. else 400: no guessing from bare names.

A plain request gets one `Route`; retries, fallbacks and the alias strategies are
app/resilience's. Allow/deny lists (`ModelPolicy`) are checked against the canonical id
`provider/upstream-model`, and for an alias against its own name and each target's id
(app/chat/dispatch.py calls them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.config_file import AliasSettings
from app.errors import InvalidRequest, PermissionDenied
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

    def target(self, model: str, provider_param: str | None) -> Route | Alias:
        if provider_param:
            return resolve(model, provider_param, self.providers)
        alias = self.aliases.get(model) if self.aliases else None
        if alias is not None:
            return alias
        # 4. An endpoint's own rule for a bare model name (issue 17) belongs between the alias
        #    and the prefix rule's refusal: `resolve` refuses a model without a `/` prefix.
        return resolve(model, None, self.providers)


def resolve(model: str, provider_param: str | None, providers: Providers) -> Route:
    """Route a request; raises UnknownProvider / ProviderNotConfigured / InvalidRequest."""
    if provider_param:
        provider = providers.lookup(provider_param.strip().lower())
        prefix, sep, rest = model.partition("/")
        upstream = rest if sep and prefix.lower() == provider.id and rest else model
    else:
        prefix, sep, rest = model.partition("/")
        if not sep or not rest:
            raise InvalidRequest(
                f"Cannot tell which provider serves model {model!r}: name it as provider/model "
                f"(e.g. openai/gpt-4o) or add ?provider=<id>.", code="unknown_provider")
        provider = providers.lookup(prefix.strip().lower())
        upstream = rest
    provider.require_configured()
    return Route(provider, upstream)


class ModelPolicy:
    """ALLOWED_MODELS / DISALLOWED_MODELS: entries match `provider/model` or the part after the first `/`."""

    def __init__(self, allowed: Iterable[str], disallowed: Iterable[str]):
        self.allowed = frozenset(e.strip().lower() for e in allowed if e.strip())
        self.disallowed = frozenset(e.strip().lower() for e in disallowed if e.strip())

    @staticmethod
    def _forms(model_id: str) -> set[str]:
        lowered = model_id.strip().lower()
        _, sep, rest = lowered.partition("/")
        return {lowered, rest} if sep else {lowered}

    def allows(self, model_id: str) -> bool:
        if self.allowed:
            return bool(self._forms(model_id) & self.allowed)
        return not (self._forms(model_id) & self.disallowed)

    def check(self, model_id: str) -> None:
        if not self.allows(model_id):
            raise PermissionDenied(f"Model {model_id} is not allowed on this gateway.", code="model_not_allowed")
