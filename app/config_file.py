"""The optional configuration file (`GATEWAY_CONFIG=path/to/gateway.yaml`): what it may hold, read once.

    deployments:       named upstreams of a catalog kind, each with its own URL, key and headers
    aliases:           model names the gateway owns -> ordered `deployment/model` targets + strategy
    retry:             attempts per target, backoff, the Retry-After cap, the retry budget
    circuit_breaker:   consecutive failures before a deployment is paused, and for how long
    prices:            USD per million tokens per model, laid over the shipped table (app/accounts)

`load(path, environ, provider_urls=..., provider_keys=...)` reads it with PyYAML (duplicate keys
refused), replaces every `${NAME}` in a string value with that environment variable, validates
it with the marshmallow schemas of app/config_schema.py (unknown keys are errors, so a typo
never passes silently), then checks what one schema cannot: kinds, URLs, names, and that every
alias target names a deployment that exists and is configured. A problem raises
`ConfigFileError(where, problem)`, `where` being the key path (`aliases.fast.targets[1]`);
`Settings` (app/config.py) turns it into its one line naming the file. Values of `api_key` and
`headers` are never shown in a message.

Without a file (or for a section it leaves out) the defaults below apply: retries and circuit
breakers are on for every provider. Importing this module is cheap (gunicorn's master reads it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml
from marshmallow import ValidationError

from app.config_schema import FileSchema, first_problem
from app.config_values import check_http_url
from app.providers.catalog import CATALOG

DEPLOYMENT_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
ALIAS_NAME = re.compile(r"[^\s\x00-\x1f]{1,256}")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigFileError(ValueError):
    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


# -- what the gateway gets ------------------------------------------------------------------------

@dataclass(frozen=True)
class Deployment:
    """A named upstream of a catalog kind; `replaces` when it is named like a catalog provider."""

    name: str
    kind: str
    base_url: str
    api_key: str = field(repr=False)
    headers: Mapping[str, str] = field(repr=False, default_factory=lambda: MappingProxyType({}))
    replaces: bool = False


@dataclass(frozen=True)
class AliasSettings:
    name: str
    strategy: str
    targets: tuple[tuple[str, str], ...]  # (deployment, model as that deployment knows it)


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 3  # upstream tries per target, the first included
    backoff: float = 0.25  # first wait in seconds; doubles, with jitter
    max_backoff: float = 5.0  # longest wait between two tries
    max_retry_after: float = 10.0  # a longer Retry-After moves on to the next target instead
    budget: float = 0.2  # extra upstream requests allowed, as a share of first tries (sliding minute)
    budget_min: int = 10  # extra upstream requests a minute allowed whatever the traffic


@dataclass(frozen=True)
class CircuitBreakerSettings:
    failures: int = 5  # consecutive failures that open a deployment's circuit
    cooldown: float = 30.0  # seconds it stays open before one trial request


@dataclass(frozen=True)
class ConfigFile:
    path: str = ""
    deployments: tuple[Deployment, ...] = ()
    aliases: Mapping[str, AliasSettings] = field(default_factory=lambda: MappingProxyType({}))
    retry: RetrySettings = RetrySettings()
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))


# -- reading ----------------------------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it would keep the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice", mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigFileError(where, f"not valid YAML ({problem})") from None


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def expand(value: Any, environ: Mapping[str, str], where: str = "") -> Any:
    """Every `${NAME}` in the string values of `value` replaced by that variable; unset is an error."""
    if isinstance(value, str):
        def variable(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigFileError(where, f"${{{name}}} refers to {name}, which is not set in the environment")
            return environ[name]

        return _REFERENCE.sub(variable, value)
    if isinstance(value, dict):
        return {k: expand(v, environ, _join(where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def load(path: str, environ: Mapping[str, str], *, provider_urls: Mapping[str, str],
         provider_keys: Mapping[str, str], configured: Callable[[str], bool]) -> ConfigFile:
    """Read, expand and check the file at `path`; raises ConfigFileError. `configured(pid)`: whether
    a catalog provider's own settings make it usable (an alias target naming it needs that)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise ConfigFileError("", "not UTF-8 text") from None
    except OSError:
        raise ConfigFileError("", "not a readable file") from None
    raw = read_yaml(text)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigFileError("", "expected a mapping of sections (deployments, aliases, retry, circuit_breaker, prices)")
    schema = FileSchema()
    try:
        data = schema.load(expand(raw, environ))
    except ValidationError as exc:
        raise ConfigFileError(*first_problem(exc.messages, schema)) from None
    deployments = tuple(_deployment(name, spec, provider_urls, provider_keys)
                        for name, spec in (data.get("deployments") or {}).items())
    known = {d.name: d for d in deployments}
    aliases = {name: _alias(name, spec, known, configured) for name, spec in (data.get("aliases") or {}).items()}
    retry = RetrySettings(**(data.get("retry") or {}))
    if retry.max_backoff < retry.backoff:
        raise ConfigFileError("retry.max_backoff", "must be at least retry.backoff")
    return ConfigFile(
        path=path, deployments=deployments, aliases=MappingProxyType(aliases), retry=retry,
        circuit_breaker=CircuitBreakerSettings(**(data.get("circuit_breaker") or {})),
        prices=MappingProxyType({name: MappingProxyType(dict(price)) for name, price in (data.get("prices") or {}).items()}),
    )


def _deployment(name: str, spec: Mapping[str, Any], provider_urls: Mapping[str, str],
                provider_keys: Mapping[str, str]) -> Deployment:
    where = f"deployments.{name}"
    if not DEPLOYMENT_NAME.fullmatch(name):
        raise ConfigFileError(where, "a deployment name is lower-case letters, digits, '-', '_' and '.' "
                                     "(at most 63, starting with a letter or digit)")
    replaces = name in CATALOG
    kind = (spec.get("kind") or (name if replaces else "")).strip().lower()
    if not kind:
        raise ConfigFileError(f"{where}.kind", f"missing: name the catalog kind ({', '.join(CATALOG)})")
    if kind not in CATALOG:
        raise ConfigFileError(f"{where}.kind", f"unknown kind {kind!r} (known: {', '.join(CATALOG)})")
    if replaces and kind != name:
        raise ConfigFileError(f"{where}.kind", f"a deployment named like the catalog provider {name!r} replaces "
                                               f"its settings and must be of kind {name!r}; choose another name")
    url = (spec.get("base_url") or "").strip() or (provider_urls[name] if replaces else CATALOG[kind].url)
    try:
        check_http_url(url)
    except ValueError as exc:
        raise ConfigFileError(f"{where}.base_url", str(exc)) from None
    if "{" in url:
        raise ConfigFileError(f"{where}.base_url", f"replace the placeholder in the {kind} catalog URL: set base_url")
    headers = spec.get("headers") or {}
    for header, value in headers.items():
        if not _HEADER_NAME.fullmatch(header):
            raise ConfigFileError(f"{where}.headers", f"{header!r} is not a valid header name")
        if not _HEADER_VALUE.fullmatch(value):
            raise ConfigFileError(f"{where}.headers.{header}", "a header value cannot hold line breaks or control characters")
    api_key = spec.get("api_key")
    if api_key is None:
        api_key = provider_keys.get(name, "") if replaces else ""
    if api_key != api_key.strip() or not _HEADER_VALUE.fullmatch(api_key):
        raise ConfigFileError(f"{where}.api_key", "the key has spaces around it or control characters in it")
    return Deployment(name, kind, url, api_key, MappingProxyType(dict(headers)), replaces)


def _alias(name: str, spec: Mapping[str, Any], deployments: Mapping[str, Deployment],
           configured: Callable[[str], bool]) -> AliasSettings:
    where = f"aliases.{name}"
    if not ALIAS_NAME.fullmatch(name):
        raise ConfigFileError(where, "an alias name is 1 to 256 characters without spaces or control characters")
    targets: list[tuple[str, str]] = []
    for index, target in enumerate(spec["targets"]):
        at = f"{where}.targets[{index}]"
        prefix, sep, model = target.strip().partition("/")
        deployment = prefix.strip().lower()
        if not sep or not deployment or not model.strip():
            raise ConfigFileError(at, f"expected deployment/model (e.g. openai/gpt-4o-mini), got {target!r}")
        if deployment not in deployments and deployment not in CATALOG:
            named = ", ".join(deployments) or "none"
            raise ConfigFileError(at, f"unknown deployment {deployment!r} (deployments in this file: {named}; "
                                      f"or a catalog provider: {', '.join(CATALOG)})")
        if deployment not in deployments and not configured(deployment):
            setting = f"{deployment.upper()}_API_URL" if CATALOG[deployment].auth_type == "none" else f"{deployment.upper()}_API_KEY"
            raise ConfigFileError(at, f"provider {deployment} is not configured: set {setting} "
                                      f"(or declare it under deployments)")
        if (deployment, model.strip()) in targets:
            raise ConfigFileError(at, f"{deployment}/{model.strip()} is listed twice")
        targets.append((deployment, model.strip()))
    return AliasSettings(name, spec["strategy"], tuple(targets))
