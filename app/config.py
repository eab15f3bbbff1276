"""Typed settings, read once from the environment (and a `.env` file when present); the ONLY validator.

Every setting is a field of `Settings` declared with `setting(...)`: its environment variable,
default, section and help text live next to its type (the types and their parsers are in
app/config_values.py), with any bound (`minimum=`, `choices=`) and, for a setting that does
nothing here, `ignored="why"`. `Settings.from_environ()` parses and checks them all, the format
of each value and how they fit together, and raises `ConfigError` with one line naming the
variable: gunicorn's master prints that line and exits with status 2 (gunicorn.conf.py), so no
worker ever meets a bad value. Downstream code gets typed values (networks, URLs, the API keys
read from AUTH_API_KEYS_FILE) and parses nothing again.

Names the gateway does not read but a user may bring from the Go gateway or the SDK docs
(`ENABLE_AUTH`, `AUTH_ENABLED`, ...) are in RENAMED: one that is set stops start-up with a line
naming the setting to use instead. The provider settings (`<ID>_API_URL`, `<ID>_API_KEY`) come
from the provider catalog.

`make docs` writes docs/configuration.md from these declarations (app/config_docs.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any, get_type_hints

from app.auth.api_keys import looks_like_jwt
from app.config_file import (
    AliasSettings,
    CircuitBreakerSettings,
    ConfigFile,
    ConfigFileError,
    Deployment,
    RetrySettings,
)
from app.config_file import load as load_config_file
from app.config_values import (
    PARSERS,
    ByteSize,
    CommaList,
    Duration,
    Host,
    HttpUrl,
    Networks,
    Port,
    RequestLimits,
    StorageUri,
    UrlList,
    check_http_url,
    parse_duration,
)
from app.providers.catalog import CATALOG

__all__ = ["RENAMED", "SECTIONS", "ConfigError", "Settings", "declared_fields", "environment_with_dotenv",
           "parse_duration"]

SECTIONS = {
    "general": "General settings",
    "telemetry": "Telemetry",
    "mcp": "Model Context Protocol (MCP)",
    "auth": "Authentication",
    "rate_limit": "Rate limits",
    "accounts": "Virtual keys, budgets and the usage ledger",
    "console": "Web console",
    "server": "Server settings",
    "client": "Client settings",
    "resilience": "Deployments, aliases, retries and provider health",
    "providers": "Providers",
}

# Names this gateway does not read, mapped to the setting that does the job. The SDK-era docs and
# the Go gateway before v0.23 used the first group; later Go releases renamed the `*_ENABLE`
# switches to `*_ENABLED`. Ignoring them would be silent (ENABLE_AUTH=true would leave auth off),
# so a set one stops start-up.
RENAMED = {
    "ENABLE_AUTH": "AUTH_ENABLE",
    "ENABLE_TELEMETRY": "TELEMETRY_ENABLE",
    "ENABLE_MCP": "MCP_ENABLE",
    "EXPOSE_MCP": "MCP_EXPOSE",
    "OIDC_ISSUER_URL": "AUTH_OIDC_ISSUER",
    "OIDC_CLIENT_ID": "AUTH_OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET": "AUTH_OIDC_CLIENT_SECRET",
    "AUTH_ENABLED": "AUTH_ENABLE",
    "MCP_ENABLED": "MCP_ENABLE",
    "MCP_POLLING_ENABLED": "MCP_POLLING_ENABLE",
    "TELEMETRY_ENABLED": "TELEMETRY_ENABLE",
}

_NO_EXPECT_CONTINUE = "requests never sends `Expect: 100-continue`, so there is no answer to wait for"


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def setting(env: str, default: str, help: str, *, section: str, secret: bool = False,
            minimum: str | None = None, choices: tuple[str, ...] = (), ignored: str | None = None) -> Any:
    """Declare a field. `default` and `minimum` are written as they would be in the environment;
    `choices` are compared case-insensitively; `ignored` says why a setting has no effect."""
    return field(default=None, repr=not secret,
                 metadata={"env": env, "default": default, "help": help, "section": section, "secret": secret,
                           "minimum": minimum, "choices": choices, "ignored": ignored})


@dataclass(frozen=True)
class Settings:
    # general
    environment: str = setting("ENVIRONMENT", "production", "`development` switches logs to readable text and enables request previews in debug logs; anything else logs one JSON object per line.", section="general")
    log_level: str = setting("LOG_LEVEL", "info", "Log level.", section="general", choices=("debug", "info", "warning", "warn", "error", "critical"))
    allowed_models: CommaList = setting("ALLOWED_MODELS", "", "Comma-separated models to allow (`provider/model` or bare `model`, case-insensitive). When non-empty it wins over DISALLOWED_MODELS. Filters /v1/models and gates every path that calls a model.", section="general")
    disallowed_models: CommaList = setting("DISALLOWED_MODELS", "", "Comma-separated models to refuse (403), same matching as ALLOWED_MODELS. Ignored when ALLOWED_MODELS is set.", section="general")
    enable_vision: bool = setting("ENABLE_VISION", "false", "Allow image content parts. When false, requests with images are refused with 400; when true, images go to providers whose catalog entry supports vision, and other providers answer 400.", section="general")
    debug_content_truncate_words: int = setting("DEBUG_CONTENT_TRUNCATE_WORDS", "10", "Words kept per message in debug request previews (development only).", section="general", minimum="0")
    debug_max_messages: int = setting("DEBUG_MAX_MESSAGES", "100", "Messages kept in debug request previews (development only).", section="general", minimum="0")
    models_cache_ttl: Duration = setting("MODELS_CACHE_TTL", "60s", "How long each provider's model list is cached; 0 turns the cache off. Failed fetches are never cached.", section="general")

    # telemetry
    telemetry_enable: bool = setting("TELEMETRY_ENABLE", "false", "Serve Prometheus metrics.", section="telemetry")
    telemetry_metrics_port: Port = setting("TELEMETRY_METRICS_PORT", "9464", "Port of the metrics server (GET /metrics), one per host, summing all workers.", section="telemetry", minimum="1")
    telemetry_max_model_labels: int = setting("TELEMETRY_MAX_MODEL_LABELS", "50", "Distinct `model` label values per provider in each worker's metrics (models named in ALLOWED_MODELS always have their own); any further model is counted as `other`, so clients cannot create unbounded series. The `tool_name` label of llm_tool_calls_total is bounded the same way, per tool type.", section="telemetry", minimum="0")

    # mcp
    mcp_enable: bool = setting("MCP_ENABLE", "false", "Give models the tools of the MCP servers and run their calls in the gateway.", section="mcp")
    mcp_expose: bool = setting("MCP_EXPOSE", "false", "Serve GET /v1/mcp/tools.", section="mcp")
    mcp_servers: UrlList = setting("MCP_SERVERS", "", "Comma-separated MCP server URLs (streamable HTTP), each http:// or https://.", section="mcp")
    mcp_client_timeout: Duration = setting("MCP_CLIENT_TIMEOUT", "5s", "Longest one MCP exchange may take as a whole (connect, send, headers and the whole answer), like Go's http.Client.Timeout; a tool call that runs longer fails as an error result. 0 for no bound.", section="mcp")
    mcp_dial_timeout: Duration = setting("MCP_DIAL_TIMEOUT", "3s", "Longest wait to connect to an MCP server.", section="mcp", minimum="1ms")
    mcp_tls_handshake_timeout: Duration = setting("MCP_TLS_HANDSHAKE_TIMEOUT", "3s", "Added to MCP_DIAL_TIMEOUT for an https:// server: each connection attempt (TCP connect + TLS handshake) is bounded by their sum.", section="mcp")
    mcp_response_header_timeout: Duration = setting("MCP_RESPONSE_HEADER_TIMEOUT", "3s", "Longest wait for an MCP server's response headers, counted from the start of the request (connect + send + headers, as one bound; a server that trickles its headers is cut too). 0 for no bound.", section="mcp")
    mcp_expect_continue_timeout: Duration = setting("MCP_EXPECT_CONTINUE_TIMEOUT", "1s", "How long the Go gateway's MCP client waited for `100 Continue`.", section="mcp", ignored=_NO_EXPECT_CONTINUE)
    mcp_request_timeout: Duration = setting("MCP_REQUEST_TIMEOUT", "5s", "Longest wait for an MCP server's answer to initialize, tools/list or tools/call.", section="mcp", minimum="1ms")
    mcp_max_retries: int = setting("MCP_MAX_RETRIES", "3", "Connection attempts per server before waiting for the reconnect loop.", section="mcp", minimum="1")
    mcp_retry_interval: Duration = setting("MCP_RETRY_INTERVAL", "5s", "Longest wait between connection attempts.", section="mcp")
    mcp_initial_backoff: Duration = setting("MCP_INITIAL_BACKOFF", "1s", "First wait of the exponential backoff.", section="mcp")
    mcp_enable_reconnect: bool = setting("MCP_ENABLE_RECONNECT", "true", "Keep retrying servers that are down.", section="mcp")
    mcp_reconnect_interval: Duration = setting("MCP_RECONNECT_INTERVAL", "30s", "Interval between reconnection attempts.", section="mcp", minimum="1ms")
    mcp_polling_enable: bool = setting("MCP_POLLING_ENABLE", "true", "Poll each server's health.", section="mcp")
    mcp_polling_interval: Duration = setting("MCP_POLLING_INTERVAL", "30s", "Interval between health polls.", section="mcp", minimum="1ms")
    mcp_polling_timeout: Duration = setting("MCP_POLLING_TIMEOUT", "5s", "Timeout of one health poll.", section="mcp", minimum="1ms")
    mcp_disable_healthcheck_logs: bool = setting("MCP_DISABLE_HEALTHCHECK_LOGS", "true", "Leave routine health-poll results out of the logs.", section="mcp")
    mcp_max_iterations: int = setting("MCP_MAX_ITERATIONS", "10", "Most model calls in one agent loop.", section="mcp", minimum="1")
    mcp_include_tools: CommaList = setting("MCP_INCLUDE_TOOLS", "", "Only these MCP tools (case-insensitive, with or without `mcp_`); wins over MCP_EXCLUDE_TOOLS.", section="mcp")
    mcp_exclude_tools: CommaList = setting("MCP_EXCLUDE_TOOLS", "", "MCP tools to leave out (case-insensitive, with or without `mcp_`).", section="mcp")

    # auth
    auth_enable: bool = setting("AUTH_ENABLE", "false", "Require a credential (OIDC JWT or API key) on every route but the probes GET /health and GET /health/ready.", section="auth")
    auth_oidc_issuer: HttpUrl = setting("AUTH_OIDC_ISSUER", "http://keycloak:8080/realms/inference-gateway-realm", "OIDC issuer URL; discovery at <issuer>/.well-known/openid-configuration (fetched on the first token, not at start-up). Empty turns OIDC off (API keys only).", section="auth")
    auth_oidc_client_id: str = setting("AUTH_OIDC_CLIENT_ID", "inference-gateway-client", "OIDC client ID; tokens must carry it in `aud`.", section="auth", secret=True)
    auth_oidc_client_secret: str = setting("AUTH_OIDC_CLIENT_SECRET", "", "OIDC client secret.", section="auth", secret=True, ignored="the gateway only verifies tokens, with the issuer's public keys; a client secret is needed only to obtain tokens")
    auth_api_keys: CommaList = setting("AUTH_API_KEYS", "", "Comma-separated static API keys accepted as `Authorization: Bearer <key>` or `x-api-key`. A key must not have the shape of a JWT (three dot-separated parts).", section="auth", secret=True)
    auth_api_keys_file: str = setting("AUTH_API_KEYS_FILE", "", "File with one API key per line; blank lines and `#` comments are ignored. Read at start-up when AUTH_ENABLE=true, and must be readable UTF-8 text then.", section="auth")
    auth_failure_limit: RequestLimits = setting("AUTH_FAILURE_LIMIT", "10/minute", "Failed authentications (a wrong API key, admin key or token) allowed per client address, flask-limiter syntax (`10/minute;100/hour`); past it every request from that address gets 429 with Retry-After until the window ends, even with a correct key. Counted in RATE_LIMIT_STORAGE_URI (exact across workers and hosts on Redis), whether RATE_LIMIT_ENABLE is on or not. Empty turns it off.", section="auth")

    # rate limits
    rate_limit_enable: bool = setting("RATE_LIMIT_ENABLE", "false", "Limit requests (and tokens) per subject.", section="rate_limit")
    rate_limit_default: RequestLimits = setting("RATE_LIMIT_DEFAULT", "60/minute;1000/hour", "Request limits per subject over every route but the probes (/health, /health/ready), flask-limiter syntax, `;`-separated (e.g. `60/minute;1000/hour`); empty for none.", section="rate_limit")
    rate_limit_storage_uri: StorageUri = setting("RATE_LIMIT_STORAGE_URI", "memory://", "`memory://` counts per worker process (N workers allow N times the limit); `redis://host:6379/0` shares limits exactly across every worker and host.", section="rate_limit")
    rate_limit_fail_open: bool = setting("RATE_LIMIT_FAIL_OPEN", "true", "When the limit storage is unreachable: true serves without limits and logs an error (at most every 10 s per worker), false answers 503.", section="rate_limit")
    rate_limit_storage_backoff: Duration = setting("RATE_LIMIT_STORAGE_BACKOFF", "5s", "After a failure of the limit storage, how long each worker skips it (serving per RATE_LIMIT_FAIL_OPEN without waiting for it) before trying it again; 0 tries it on every request.", section="rate_limit")
    rate_limit_tokens_per_minute: int = setting("RATE_LIMIT_TOKENS_PER_MINUTE", "0", "Tokens per subject per minute, charged with each completion's real usage (streams too); once used up, requests are refused until the minute ends. 0 turns it off.", section="rate_limit", minimum="0")
    rate_limit_key_prefix: str = setting("RATE_LIMIT_KEY_PREFIX", "inference-gateway", "Prefix of every rate-limit key in the storage, so deployments (or test runs) can share one Redis without sharing counters.", section="rate_limit")
    trusted_proxies: Networks = setting("TRUSTED_PROXIES", "", "Comma-separated proxy addresses or CIDRs whose X-Forwarded-For is honoured.", section="rate_limit")

    # accounts (app/accounts/): virtual keys, budgets, the usage ledger
    accounts_enable: bool = setting("ACCOUNTS_ENABLE", "false", "Virtual keys (`sk-gw-...`, with model lists, rpm/tpm limits and budgets), the admin API and the usage ledger, stored in DATABASE_URL. Keys are only checked when AUTH_ENABLE=true.", section="accounts")
    database_url: str = setting("DATABASE_URL", "sqlite:///gateway.db", "Where keys and usage live: `sqlite:///path.db` (one host; relative to the working directory; WAL mode) or `postgresql+pg8000://user:password@host:5432/dbname` (several workers and hosts).", section="accounts", secret=True)
    database_auto_migrate: bool = setting("DATABASE_AUTO_MIGRATE", "true", "Bring the database schema up to date when gunicorn starts (once, in the master, before the workers). When false, run `flask --app wsgi db upgrade` yourself.", section="accounts")
    admin_api_key: str = setting("ADMIN_API_KEY", "", "Bearer credential of the admin API (`/admin/...`, at least 16 characters). The admin API is off while it is empty. Not accepted for model calls unless also listed in AUTH_API_KEYS.", section="accounts", secret=True)
    usage_flush_interval: Duration = setting("USAGE_FLUSH_INTERVAL", "1s", "How often each worker writes its waiting usage rows to the database, in one batch (at most 60s).", section="accounts")
    usage_buffer_rows: int = setting("USAGE_BUFFER_ROWS", "10000", "Most usage rows a worker keeps while the database cannot be written; past that the oldest are dropped (and counted in the log).", section="accounts")

    # console (app/console/)
    console_idle_timeout: Duration = setting("CONSOLE_IDLE_TIMEOUT", "30m", "The web console (`/console`, on while ADMIN_API_KEY is set) signs an operator out after this long without a page load or form sent (the charts' polling does not count); at least 1m, at most 24h.", section="console")

    # server
    server_host: Host = setting("SERVER_HOST", "0.0.0.0", "Address to bind: an IP address or host name (ignored when $PORT is set, as on Heroku: then 0.0.0.0:$PORT).", section="server")
    server_port: Port = setting("SERVER_PORT", "8080", "Port to bind; 0 takes any free port (gunicorn logs the one it took: `Listening at: ...`).", section="server")
    port: Port | None = setting("PORT", "", "Set by Heroku-style platforms: when set, the gateway binds 0.0.0.0:$PORT and SERVER_HOST/SERVER_PORT are not used.", section="server")
    server_read_timeout: Duration = setting("SERVER_READ_TIMEOUT", "30s", "Longest wait for a whole request, headers and body, counted from its first byte (from the connection's start for the first one); past it the client gets 408 and the connection is closed. Requests still being received do not hold one of the WORKER_CONNECTIONS serving slots.", section="server")
    server_write_timeout: Duration = setting("SERVER_WRITE_TIMEOUT", "30s", "Grace period at shutdown (SIGTERM): requests and streams in flight get this long to finish. One still running at its end is ended: a stream with a last SSE error event (code `server_shutting_down`), any other request with 503.", section="server")
    server_idle_timeout: Duration = setting("SERVER_IDLE_TIMEOUT", "120s", "How long a keep-alive connection may wait for its next request before it is closed (within a second on shutdown).", section="server")
    server_tls_cert_path: str = setting("SERVER_TLS_CERT_PATH", "", "TLS certificate path (serve HTTPS when set with the key; the pair is loaded at start-up).", section="server")
    server_tls_key_path: str = setting("SERVER_TLS_KEY_PATH", "", "TLS key path (unencrypted PEM).", section="server")
    server_max_request_body_size: ByteSize = setting("SERVER_MAX_REQUEST_BODY_SIZE", "10MiB", "Largest request body accepted; larger ones get 413.", section="server", minimum="1")
    web_concurrency: int = setting("WEB_CONCURRENCY", "2", "Number of gunicorn worker processes.", section="server", minimum="1")
    worker_connections: int = setting("WORKER_CONNECTIONS", "2000", "Requests served at once per gevent worker. A worker accepts up to four times as many connections, so clients still sending their request, or idle between requests, do not take a serving slot.", section="server", minimum="1")

    # client
    client_timeout: Duration = setting("CLIENT_TIMEOUT", "30s", "Longest silence from a provider (or the OIDC issuer): waiting for its next bytes, in the headers, the response, or between two events of a stream. Never caps a whole stream.", section="client", minimum="1ms")
    client_max_idle_conns: int = setting("CLIENT_MAX_IDLE_CONNS", "0", "Most connections one upstream (a provider, an MCP server, the OIDC issuer) keeps open for reuse; 0 (the default) means WORKER_CONNECTIONS.", section="client", minimum="0")
    client_max_idle_conns_per_host: int = setting("CLIENT_MAX_IDLE_CONNS_PER_HOST", "0", "Connections kept open per upstream host for reuse; 0 (the default) means WORKER_CONNECTIONS, so a worker carrying its full load of concurrent calls to one provider reuses every connection. A smaller value closes the surplus after each burst (urllib3 logs \"Connection pool is full\").", section="client", minimum="0")
    client_idle_conn_timeout: Duration = setting("CLIENT_IDLE_CONN_TIMEOUT", "30s", "How long the Go gateway kept an idle provider connection.", section="client", ignored="urllib3 (under requests) keeps no idle timer; a pooled connection stays until the provider closes it, and one found closed is replaced")
    client_tls_min_version: str = setting("CLIENT_TLS_MIN_VERSION", "TLS12", "Minimum TLS version towards providers.", section="client", choices=("TLS12", "TLS13"))
    client_disable_compression: bool = setting("CLIENT_DISABLE_COMPRESSION", "true", "Ask providers for uncompressed responses (faster streaming).", section="client")
    client_response_header_timeout: Duration = setting("CLIENT_RESPONSE_HEADER_TIMEOUT", "10s", "Longest wait for a provider's (or the OIDC issuer's) response headers, counted from the start of the request: connect + send + headers, as one bound, so a provider that trickles its headers is cut with 504 too. 0 for no bound.", section="client")
    client_max_response_body_size: ByteSize = setting("CLIENT_MAX_RESPONSE_BODY_SIZE", "100MiB", "Largest answer body the gateway reads whole from a provider (a completion or embeddings answer, an error body) or from the OIDC issuer or an MCP server, counted after decompression; a larger one is a 502. Streams and /proxy bodies are relayed as they arrive and not bounded by it.", section="client", minimum="1KiB")
    client_max_event_size: ByteSize = setting("CLIENT_MAX_EVENT_SIZE", "16MiB", "Largest single server-sent event the gateway accepts from a provider's stream; a stream that goes past it without an event boundary is ended with an error event (before its first byte: a 502).", section="client", minimum="1KiB")
    client_expect_continue_timeout: Duration = setting("CLIENT_EXPECT_CONTINUE_TIMEOUT", "1s", "How long the Go gateway waited for a provider's `100 Continue`.", section="client", ignored=_NO_EXPECT_CONTINUE)

    # resilience (app/resilience/, the file's model in app/config_file.py)
    gateway_config: str = setting("GATEWAY_CONFIG", "", "Path of the optional YAML configuration file: deployments (named upstreams of a catalog kind), aliases (model names with fallback, round-robin or least-busy targets), retry, circuit_breaker and prices; see the README. Read and checked at start-up like every setting. Without it, retries and circuit breakers run with their defaults for every provider.", section="resilience")
    health_check_interval: Duration = setting("HEALTH_CHECK_INTERVAL", "0", "How often one worker per host asks every configured deployment for its model list, to keep GET /health/providers current without traffic; 0 turns the active check off (health then comes from requests alone). At least 1s when on.", section="resilience")

    # providers: <ID>_API_URL and <ID>_API_KEY come from the catalog; what else a provider needs:
    cloudflare_account_id: str = setting("CLOUDFLARE_ACCOUNT_ID", "", "Cloudflare account id (32 hex digits, in the dashboard's URL): fills `{ACCOUNT_ID}` in CLOUDFLARE_API_URL. Required with CLOUDFLARE_API_KEY.", section="providers")

    provider_urls: dict[str, str] = field(default_factory=dict)
    provider_keys: dict[str, str] = field(default_factory=dict, repr=False)
    # Read at start-up: AUTH_API_KEYS plus, with AUTH_ENABLE=true, the lines of AUTH_API_KEYS_FILE.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # The declared variables the environment (or .env) sets, defaults or not.
    explicitly_set: frozenset[str] = field(default=frozenset(), repr=False)
    # The providers whose <ID>_API_URL is set.
    provider_urls_set: frozenset[str] = field(default=frozenset(), repr=False)
    # GATEWAY_CONFIG's content, checked (the defaults without a file).
    config_file: ConfigFile = field(default_factory=ConfigFile, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse and check every setting from `environ` (default: `.env` file, then os.environ over it)."""
        if environ is None:
            environ = environment_with_dotenv()
        for old, new in RENAMED.items():
            if old in environ:
                raise ConfigError(f"{old} is not read by this gateway: set {new} instead")
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in declared_fields():
            env = f.metadata["env"]
            raw = environ.get(env, f.metadata["default"])
            try:
                values[f.name] = _parse(PARSERS[hints[f.name]], raw, f.metadata)
            except ValueError as exc:
                shown = "<hidden>" if f.metadata["secret"] else repr(raw)
                raise ConfigError(f"invalid {env}={shown}: {exc}") from None
        urls_set = frozenset(pid for pid in CATALOG if environ.get(f"{pid.upper()}_API_URL", "").strip())
        urls = {pid: environ.get(f"{pid.upper()}_API_URL", "").strip() or spec.url
                for pid, spec in CATALOG.items()}
        keys = {pid: environ.get(f"{pid.upper()}_API_KEY", "").strip() for pid in CATALOG}
        declared = {f.metadata["env"]: values[f.name] for f in declared_fields()}
        for pid, url in urls.items():
            url = urls[pid] = _fill_placeholders(pid, url, declared, needed=bool(keys[pid]))
            try:
                check_http_url(url)
            except ValueError as exc:
                raise ConfigError(f"invalid {pid.upper()}_API_URL={url!r}: {exc}") from None
        api_keys = values["auth_api_keys"]
        if values["auth_enable"] and values["auth_api_keys_file"]:
            api_keys += read_keys_file(values["auth_api_keys_file"])
        explicitly_set = frozenset(f.metadata["env"] for f in declared_fields() if f.metadata["env"] in environ)
        config_file = ConfigFile()
        if values["gateway_config"].strip():
            path = values["gateway_config"].strip()
            try:
                config_file = load_config_file(path, environ, provider_urls=urls, provider_keys=keys,
                                               configured=partial(catalog_provider_configured, keys=keys, urls_set=urls_set))
            except ConfigFileError as exc:
                raise ConfigError(f"invalid GATEWAY_CONFIG={path!r}: {exc}") from None
        settings = cls(**values, provider_urls=urls, provider_keys=keys, api_keys=tuple(dict.fromkeys(api_keys)),
                       explicitly_set=explicitly_set, provider_urls_set=urls_set, config_file=config_file)
        settings.check()
        return settings

    def check(self) -> None:
        """Cross-field checks that a single parser cannot make."""
        if bool(self.server_tls_cert_path) != bool(self.server_tls_key_path):
            raise ConfigError("invalid SERVER_TLS_CERT_PATH/SERVER_TLS_KEY_PATH: set both or neither")
        if self.server_tls_cert_path:
            check_tls_pair(self.server_tls_cert_path, self.server_tls_key_path)
        if any(looks_like_jwt(key) for key in self.api_keys):  # the guard would send it to OIDC
            raise ConfigError("invalid API key in AUTH_API_KEYS/AUTH_API_KEYS_FILE: a key must not have "
                              "the shape of a JWT (three dot-separated parts)")
        if self.auth_enable and not self.auth_oidc_issuer and not self.api_keys and not self.accounts_enable:
            raise ConfigError("invalid AUTH_ENABLE=true: set AUTH_OIDC_ISSUER, AUTH_API_KEYS or AUTH_API_KEYS_FILE "
                              "(or ACCOUNTS_ENABLE=true, for virtual keys)")
        bound_port = self.server_port if self.port is None else self.port
        if self.telemetry_enable and self.telemetry_metrics_port == bound_port:
            raise ConfigError(f"invalid TELEMETRY_METRICS_PORT={self.telemetry_metrics_port}: the gateway itself "
                              f"listens on that port ({'PORT' if self.port is not None else 'SERVER_PORT'})")
        if 0 < self.health_check_interval < 1:
            raise ConfigError(f"invalid HEALTH_CHECK_INTERVAL={self.health_check_interval:g}s: must be 0 (off) or at least 1s")
        self.check_accounts()

    # The configuration file's sections (app/config_file.py), typed; defaults without a file.
    @property
    def deployments(self) -> tuple[Deployment, ...]:
        return self.config_file.deployments

    @property
    def aliases(self) -> Mapping[str, AliasSettings]:
        return self.config_file.aliases

    @property
    def retry(self) -> RetrySettings:
        return self.config_file.retry

    @property
    def circuit_breaker(self) -> CircuitBreakerSettings:
        return self.config_file.circuit_breaker

    @property
    def prices(self) -> Mapping[str, Mapping[str, float]]:
        return self.config_file.prices

    def ignored_settings(self) -> list[str]:
        """One line per setting that is set but does nothing here, saying why (logged at start-up)."""
        return [f"{f.metadata['env']} is set but ignored: {f.metadata['ignored']}" for f in declared_fields()
                if f.metadata["ignored"] and f.metadata["env"] in self.explicitly_set]

    def check_accounts(self) -> None:
        database_url_problem = check_database_url(self.database_url)
        if database_url_problem:
            raise ConfigError(f"invalid DATABASE_URL={mask_database_url(self.database_url)!r}: {database_url_problem}")
        if self.admin_api_key and len(self.admin_api_key.strip()) < 16:
            raise ConfigError("invalid ADMIN_API_KEY=<hidden>: use at least 16 characters")
        if not 0 < self.usage_flush_interval <= 60:
            raise ConfigError(f"invalid USAGE_FLUSH_INTERVAL={self.usage_flush_interval:g}s: must be more than 0 and at most 60s")
        if not 60 <= self.console_idle_timeout <= 86400:
            raise ConfigError(f"invalid CONSOLE_IDLE_TIMEOUT={self.console_idle_timeout:g}s: must be at least 1m and at most 24h")
        if self.usage_buffer_rows < 100:
            raise ConfigError(f"invalid USAGE_BUFFER_ROWS={self.usage_buffer_rows!r}: must be at least 100")

    def provider_configured(self, pid: str) -> bool:
        return catalog_provider_configured(pid, keys=self.provider_keys, urls_set=self.provider_urls_set)

    @property
    def development(self) -> bool:
        return self.environment.strip().lower() == "development"

    def secret_values(self) -> list[str]:
        """Every configured secret, so logs can redact them."""
        found = [v for v in self.provider_keys.values() if v]
        found.extend(self.api_keys)
        for f in declared_fields():
            if f.metadata["secret"]:
                value = getattr(self, f.name)
                found.extend(value if isinstance(value, tuple) else [value])
        found.append(database_password(self.database_url))
        for deployment in self.deployments:  # literal secrets in the file are allowed, never logged
            found.append(deployment.api_key)
            found.extend(value for value in deployment.headers.values() if len(value) >= 8)
        return [v for v in dict.fromkeys(found) if v and len(v) >= 4]


def _parse(parser: Any, raw: str, metadata: Mapping[str, Any]) -> Any:
    value = parser(raw)
    choices = metadata["choices"]
    if choices and value.strip().lower() not in {choice.lower() for choice in choices}:
        raise ValueError(f"expected one of {', '.join(choices)}")
    minimum = metadata["minimum"]
    if minimum is not None and value < parser(minimum):
        raise ValueError(f"must be at least {minimum}")
    return value


_PLACEHOLDER = re.compile(r"\{([A-Z_]+)\}")
_PLACEHOLDER_VALUE = re.compile(r"[A-Za-z0-9]+")


def _fill_placeholders(pid: str, url: str, declared: Mapping[str, Any], *, needed: bool) -> str:
    """A provider URL with each `{NAME}` replaced by the setting <ID>_NAME (Cloudflare's {ACCOUNT_ID}
    by CLOUDFLARE_ACCOUNT_ID). One left unfilled stops start-up when the provider has a key."""
    def value(match: re.Match[str]) -> str:
        env = f"{pid.upper()}_{match.group(1)}"
        raw = str(declared.get(env) or "").strip()
        if raw and not _PLACEHOLDER_VALUE.fullmatch(raw):
            raise ConfigError(f"invalid {env}={raw!r}: expected letters and digits only")
        if not raw and needed:
            raise ConfigError(f"invalid {pid.upper()}_API_KEY=<hidden>: set {env} too (it fills "
                              f"{match.group(0)} in {pid.upper()}_API_URL)")
        return raw or match.group(0)

    return _PLACEHOLDER.sub(value, url)


def read_keys_file(path: str) -> tuple[str, ...]:
    """AUTH_API_KEYS_FILE's keys: one per line, blank lines and `#` comments left out."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError:
        raise ConfigError(f"invalid AUTH_API_KEYS_FILE={path!r}: not UTF-8 text") from None
    except OSError:
        raise ConfigError(f"invalid AUTH_API_KEYS_FILE={path!r}: not a readable file") from None
    return tuple(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))


def check_tls_pair(cert_path: str, key_path: str) -> None:
    """Load the certificate and key as gunicorn's workers will, so a bad pair stops the master."""
    import ssl  # gunicorn's master has imported it already

    for env, path in (("SERVER_TLS_CERT_PATH", cert_path), ("SERVER_TLS_KEY_PATH", key_path)):
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise ConfigError(f"invalid {env}={path!r}: not a readable file")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path, password=lambda: b"")
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise ConfigError(f"invalid SERVER_TLS_CERT_PATH/SERVER_TLS_KEY_PATH: cannot load the pair ({reason})") from None


_DATABASE_URL = re.compile(r"(?P<scheme>[a-z0-9+]+)://(?P<rest>.*)", re.DOTALL)
DATABASE_EXAMPLES = "expected sqlite:///path/to/gateway.db or postgresql+pg8000://user:password@host:5432/dbname"


def check_database_url(url: str) -> str | None:
    """What is wrong with DATABASE_URL, or None. Checked without SQLAlchemy: gunicorn's master reads
    the settings, and must not import SQLAlchemy before the workers' gevent patching."""
    match = _DATABASE_URL.fullmatch(url.strip())
    if not match:
        return DATABASE_EXAMPLES
    scheme, rest = match.group("scheme"), match.group("rest")
    if scheme in ("sqlite", "sqlite+pysqlite"):
        path = rest[1:] if rest.startswith("/") else None
        if not path or path.split("?")[0] in ("", ":memory:"):
            return "expected sqlite:///path/to/gateway.db (a file: an in-memory database is not shared by the workers)"
        return None
    if scheme in ("postgresql", "postgres", "postgresql+pg8000"):
        netloc, _, path = rest.partition("/")
        if not netloc.rpartition("@")[2] or not path.split("?")[0]:
            return "expected postgresql+pg8000://user:password@host:5432/dbname (a host and a database name)"
        return None
    if scheme.startswith("postgresql+"):
        return ("the gateway ships the pg8000 driver (pure Python, so gevent can switch requests while it waits); "
                "use postgresql+pg8000://")
    return DATABASE_EXAMPLES


def mask_database_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def database_password(url: str) -> str:
    found = re.search(r"://[^:/@]*:([^@]*)@", url)
    return found.group(1) if found else ""


def catalog_provider_configured(pid: str, *, keys: Mapping[str, str], urls_set: frozenset[str]) -> bool:
    """A catalog provider is configured by its key (none for auth type `none`) and, where its
    catalog URL is only an example (`requires_url`: Ollama), by <ID>_API_URL."""
    spec = CATALOG[pid]
    if spec.requires_url and pid not in urls_set:
        return False
    return spec.auth_type == "none" or bool(keys.get(pid))


def declared_fields() -> list:
    return [f for f in fields(Settings) if "env" in f.metadata]


def environment_with_dotenv(path: str = ".env") -> dict[str, str]:
    """The `.env` file's values (when present) overridden by the real environment."""
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(path).items() if v is not None} if os.path.exists(path) else {}
    values.update(os.environ)
    return values
