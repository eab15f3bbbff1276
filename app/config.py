"""Typed settings, read once from the environment (and a `.env` file when present).

Every setting is a field of `Settings` declared with `setting(...)`: its environment variable,
default, section and help text live next to its type. `Settings.from_environ()` parses them all
and raises `ConfigError` with one line naming the variable and the bad value. The provider
settings (`<ID>_API_URL`, `<ID>_API_KEY`) come from the provider catalog.

`make docs` writes `docs/configuration.md` from `configuration_markdown()`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

from app.providers.catalog import CATALOG

SECTIONS = {
    "general": "General settings",
    "telemetry": "Telemetry",
    "mcp": "Model Context Protocol (MCP)",
    "auth": "Authentication",
    "rate_limit": "Rate limits",
    "accounts": "Virtual keys, budgets and the usage ledger",
    "server": "Server settings",
    "client": "Client settings",
    "providers": "Providers",
}


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


class Duration(float):
    """Seconds, written the Go way: `30s`, `1m30s`, `500ms`, `2h`."""


class CommaList(tuple):
    """A comma-separated list; entries are trimmed and empty entries dropped."""


class ByteSize(int):
    """A size in bytes: `10485760`, `512KiB`, `10MiB`, `1GB`."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2, "gb": 1000**3, "gib": 1024**3}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_duration(text: str) -> Duration:
    text = text.strip()
    if text == "0":
        return Duration(0)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError("expected a duration such as 30s, 1m30s or 500ms")
    return Duration(total)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true/false, 1/0 or yes/no")


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None


def parse_byte_size(text: str) -> ByteSize:
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError("expected a size such as 10485760 or 10MiB")
    return ByteSize(int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


def parse_comma_list(text: str) -> CommaList:
    return CommaList(part.strip() for part in text.split(",") if part.strip())


PARSERS: dict[type, Any] = {
    str: str,
    bool: parse_bool,
    int: parse_int,
    Duration: parse_duration,
    ByteSize: parse_byte_size,
    CommaList: parse_comma_list,
}


def setting(env: str, default: str, help: str, *, section: str, secret: bool = False) -> Any:
    """Declare a field: `default` is written as it would be in the environment."""
    return field(default=None, repr=not secret,
                 metadata={"env": env, "default": default, "help": help, "section": section,
                           "secret": secret})


@dataclass(frozen=True)
class Settings:
    # general
    environment: str = setting("ENVIRONMENT", "production", "`development` switches logs to readable text and enables request previews in debug logs; anything else logs one JSON object per line.", section="general")
    log_level: str = setting("LOG_LEVEL", "info", "Log level: debug, info, warning, error.", section="general")
    allowed_models: CommaList = setting("ALLOWED_MODELS", "", "Comma-separated models to allow (`provider/model` or bare `model`, case-insensitive). When non-empty it wins over DISALLOWED_MODELS. Filters /v1/models and gates every path that calls a model.", section="general")
    disallowed_models: CommaList = setting("DISALLOWED_MODELS", "", "Comma-separated models to refuse (403), same matching as ALLOWED_MODELS. Ignored when ALLOWED_MODELS is set.", section="general")
    enable_vision: bool = setting("ENABLE_VISION", "false", "Allow image content parts. When false, requests with images are refused with 400; when true, images go to providers whose catalog entry supports vision, and other providers answer 400.", section="general")
    debug_content_truncate_words: int = setting("DEBUG_CONTENT_TRUNCATE_WORDS", "10", "Words kept per message in debug request previews (development only).", section="general")
    debug_max_messages: int = setting("DEBUG_MAX_MESSAGES", "100", "Messages kept in debug request previews (development only).", section="general")
    models_cache_ttl: Duration = setting("MODELS_CACHE_TTL", "60s", "How long each provider's model list is cached; 0 turns the cache off. Failed fetches are never cached.", section="general")

    # telemetry
    telemetry_enable: bool = setting("TELEMETRY_ENABLE", "false", "Serve Prometheus metrics.", section="telemetry")
    telemetry_metrics_port: int = setting("TELEMETRY_METRICS_PORT", "9464", "Port of the metrics server (GET /metrics), one per host, summing all workers.", section="telemetry")

    # mcp
    mcp_enable: bool = setting("MCP_ENABLE", "false", "Give models the tools of the MCP servers and run their calls in the gateway.", section="mcp")
    mcp_expose: bool = setting("MCP_EXPOSE", "false", "Serve GET /v1/mcp/tools.", section="mcp")
    mcp_servers: CommaList = setting("MCP_SERVERS", "", "Comma-separated MCP server URLs (streamable HTTP).", section="mcp")
    mcp_client_timeout: Duration = setting("MCP_CLIENT_TIMEOUT", "5s", "Longest one MCP exchange may take as a whole (connect, send, headers and the whole answer), like Go's http.Client.Timeout; a tool call that runs longer fails as an error result. 0 for no bound.", section="mcp")
    mcp_dial_timeout: Duration = setting("MCP_DIAL_TIMEOUT", "3s", "Longest wait to connect to an MCP server.", section="mcp")
    mcp_tls_handshake_timeout: Duration = setting("MCP_TLS_HANDSHAKE_TIMEOUT", "3s", "Added to MCP_DIAL_TIMEOUT for an https:// server: each connection attempt (TCP connect + TLS handshake) is bounded by their sum.", section="mcp")
    mcp_response_header_timeout: Duration = setting("MCP_RESPONSE_HEADER_TIMEOUT", "3s", "Longest wait for an MCP server's response headers, counted from the start of the request (connect + send + headers, as one bound; a server that trickles its headers is cut too). 0 for no bound.", section="mcp")
    mcp_expect_continue_timeout: Duration = setting("MCP_EXPECT_CONTINUE_TIMEOUT", "1s", "MCP client expect-continue timeout (accepted for compatibility).", section="mcp")
    mcp_request_timeout: Duration = setting("MCP_REQUEST_TIMEOUT", "5s", "Longest wait for an MCP server's answer to initialize, tools/list or tools/call.", section="mcp")
    mcp_max_retries: int = setting("MCP_MAX_RETRIES", "3", "Connection attempts per server before waiting for the reconnect loop.", section="mcp")
    mcp_retry_interval: Duration = setting("MCP_RETRY_INTERVAL", "5s", "Longest wait between connection attempts.", section="mcp")
    mcp_initial_backoff: Duration = setting("MCP_INITIAL_BACKOFF", "1s", "First wait of the exponential backoff.", section="mcp")
    mcp_enable_reconnect: bool = setting("MCP_ENABLE_RECONNECT", "true", "Keep retrying servers that are down.", section="mcp")
    mcp_reconnect_interval: Duration = setting("MCP_RECONNECT_INTERVAL", "30s", "Interval between reconnection attempts.", section="mcp")
    mcp_polling_enable: bool = setting("MCP_POLLING_ENABLE", "true", "Poll each server's health.", section="mcp")
    mcp_polling_interval: Duration = setting("MCP_POLLING_INTERVAL", "30s", "Interval between health polls.", section="mcp")
    mcp_polling_timeout: Duration = setting("MCP_POLLING_TIMEOUT", "5s", "Timeout of one health poll.", section="mcp")
    mcp_disable_healthcheck_logs: bool = setting("MCP_DISABLE_HEALTHCHECK_LOGS", "true", "Leave routine health-poll results out of the logs.", section="mcp")
    mcp_max_iterations: int = setting("MCP_MAX_ITERATIONS", "10", "Most model calls in one agent loop.", section="mcp")
    mcp_include_tools: CommaList = setting("MCP_INCLUDE_TOOLS", "", "Only these MCP tools (case-insensitive, with or without `mcp_`); wins over MCP_EXCLUDE_TOOLS.", section="mcp")
    mcp_exclude_tools: CommaList = setting("MCP_EXCLUDE_TOOLS", "", "MCP tools to leave out (case-insensitive, with or without `mcp_`).", section="mcp")

    # auth
    auth_enable: bool = setting("AUTH_ENABLE", "false", "Require a credential (OIDC JWT or API key) on every route but GET /health.", section="auth")
    auth_oidc_issuer: str = setting("AUTH_OIDC_ISSUER", "http://keycloak:8080/realms/inference-gateway-realm", "OIDC issuer URL; discovery at <issuer>/.well-known/openid-configuration (fetched on the first token, not at start-up). Empty turns OIDC off (API keys only).", section="auth")
    auth_oidc_client_id: str = setting("AUTH_OIDC_CLIENT_ID", "inference-gateway-client", "OIDC client ID; tokens must carry it in `aud`.", section="auth", secret=True)
    auth_oidc_client_secret: str = setting("AUTH_OIDC_CLIENT_SECRET", "", "OIDC client secret (not needed to validate tokens).", section="auth", secret=True)
    auth_api_keys: CommaList = setting("AUTH_API_KEYS", "", "Comma-separated static API keys accepted as `Authorization: Bearer <key>` or `x-api-key`.", section="auth", secret=True)
    auth_api_keys_file: str = setting("AUTH_API_KEYS_FILE", "", "File with one API key per line; blank lines and `#` comments are ignored. Must be readable when AUTH_ENABLE=true.", section="auth")

    # rate limits
    rate_limit_enable: bool = setting("RATE_LIMIT_ENABLE", "false", "Limit requests (and tokens) per subject.", section="rate_limit")
    rate_limit_default: str = setting("RATE_LIMIT_DEFAULT", "60/minute;1000/hour", "Request limits per subject over every route but /health, flask-limiter syntax, `;`-separated (e.g. `60/minute;1000/hour`); empty for none.", section="rate_limit")
    rate_limit_storage_uri: str = setting("RATE_LIMIT_STORAGE_URI", "memory://", "`memory://` counts per worker process (N workers allow N times the limit); `redis://host:6379/0` shares limits exactly across every worker and host.", section="rate_limit")
    rate_limit_fail_open: bool = setting("RATE_LIMIT_FAIL_OPEN", "true", "When the limit storage is unreachable: true serves without limits and logs an error (at most every 10 s per worker), false answers 503.", section="rate_limit")
    rate_limit_tokens_per_minute: int = setting("RATE_LIMIT_TOKENS_PER_MINUTE", "0", "Tokens per subject per minute, charged with each completion's real usage (streams too); once used up, requests are refused until the minute ends. 0 turns it off.", section="rate_limit")
    rate_limit_key_prefix: str = setting("RATE_LIMIT_KEY_PREFIX", "inference-gateway", "Prefix of every rate-limit key in the storage, so deployments (or test runs) can share one Redis without sharing counters.", section="rate_limit")
    trusted_proxies: CommaList = setting("TRUSTED_PROXIES", "", "Comma-separated proxy addresses or CIDRs whose X-Forwarded-For is honoured.", section="rate_limit")

    # accounts (app/accounts/): virtual keys, budgets, the usage ledger
    accounts_enable: bool = setting("ACCOUNTS_ENABLE", "false", "Virtual keys (`sk-gw-...`, with model lists, rpm/tpm limits and budgets), the admin API and the usage ledger, stored in DATABASE_URL. Keys are only checked when AUTH_ENABLE=true.", section="accounts")
    database_url: str = setting("DATABASE_URL", "sqlite:///gateway.db", "Where keys and usage live: `sqlite:///path.db` (one host; relative to the working directory; WAL mode) or `postgresql+pg8000://user:password@host:5432/dbname` (several workers and hosts).", section="accounts", secret=True)
    database_auto_migrate: bool = setting("DATABASE_AUTO_MIGRATE", "true", "Bring the database schema up to date when gunicorn starts (once, in the master, before the workers). When false, run `flask --app wsgi db upgrade` yourself.", section="accounts")
    admin_api_key: str = setting("ADMIN_API_KEY", "", "Bearer credential of the admin API (`/admin/...`, at least 16 characters). The admin API is off while it is empty. Not accepted for model calls unless also listed in AUTH_API_KEYS.", section="accounts", secret=True)
    usage_flush_interval: Duration = setting("USAGE_FLUSH_INTERVAL", "1s", "How often each worker writes its waiting usage rows to the database, in one batch (at most 60s).", section="accounts")
    usage_buffer_rows: int = setting("USAGE_BUFFER_ROWS", "10000", "Most usage rows a worker keeps while the database cannot be written; past that the oldest are dropped (and counted in the log).", section="accounts")

    # server
    server_host: str = setting("SERVER_HOST", "0.0.0.0", "Address to bind (ignored when $PORT is set, as on Heroku: then 0.0.0.0:$PORT).", section="server")
    server_port: int = setting("SERVER_PORT", "8080", "Port to bind.", section="server")
    server_read_timeout: Duration = setting("SERVER_READ_TIMEOUT", "30s", "Longest wait for a whole request, headers and body, counted from its first byte (from the connection's start for the first one); past it the client gets 408 and the connection is closed. Requests still being received do not hold one of the WORKER_CONNECTIONS serving slots.", section="server")
    server_write_timeout: Duration = setting("SERVER_WRITE_TIMEOUT", "30s", "Grace period at shutdown (SIGTERM): requests and streams in flight get this long to finish. One still running at its end is ended: a stream with a last SSE error event (code `server_shutting_down`), any other request with 503.", section="server")
    server_idle_timeout: Duration = setting("SERVER_IDLE_TIMEOUT", "120s", "How long a keep-alive connection may wait for its next request before it is closed (at once on shutdown).", section="server")
    server_tls_cert_path: str = setting("SERVER_TLS_CERT_PATH", "", "TLS certificate path (serve HTTPS when set with the key).", section="server")
    server_tls_key_path: str = setting("SERVER_TLS_KEY_PATH", "", "TLS key path.", section="server")
    server_max_request_body_size: ByteSize = setting("SERVER_MAX_REQUEST_BODY_SIZE", "10MiB", "Largest request body accepted; larger ones get 413.", section="server")
    web_concurrency: int = setting("WEB_CONCURRENCY", "2", "Number of gunicorn worker processes.", section="server")
    worker_connections: int = setting("WORKER_CONNECTIONS", "2000", "Concurrent connections per gevent worker.", section="server")

    # client
    client_timeout: Duration = setting("CLIENT_TIMEOUT", "30s", "Longest silence from a provider (or the OIDC issuer): waiting for its next bytes, in the headers, the response, or between two events of a stream. Never caps a whole stream.", section="client")
    client_max_idle_conns: int = setting("CLIENT_MAX_IDLE_CONNS", "0", "Most connections one upstream (a provider, an MCP server, the OIDC issuer) keeps open for reuse; 0 (the default) means WORKER_CONNECTIONS.", section="client")
    client_max_idle_conns_per_host: int = setting("CLIENT_MAX_IDLE_CONNS_PER_HOST", "0", "Connections kept open per upstream host for reuse; 0 (the default) means WORKER_CONNECTIONS, so a worker carrying its full load of concurrent calls to one provider reuses every connection. A smaller value closes the surplus after each burst (urllib3 logs \"Connection pool is full\").", section="client")
    client_idle_conn_timeout: Duration = setting("CLIENT_IDLE_CONN_TIMEOUT", "30s", "Idle connection timeout (accepted for compatibility; urllib3 keeps pooled connections until the server closes them).", section="client")
    client_tls_min_version: str = setting("CLIENT_TLS_MIN_VERSION", "TLS12", "Minimum TLS version towards providers: TLS12 or TLS13.", section="client")
    client_disable_compression: bool = setting("CLIENT_DISABLE_COMPRESSION", "true", "Ask providers for uncompressed responses (faster streaming).", section="client")
    client_response_header_timeout: Duration = setting("CLIENT_RESPONSE_HEADER_TIMEOUT", "10s", "Longest wait for a provider's (or the OIDC issuer's) response headers, counted from the start of the request: connect + send + headers, as one bound, so a provider that trickles its headers is cut with 504 too. 0 for no bound.", section="client")
    client_expect_continue_timeout: Duration = setting("CLIENT_EXPECT_CONTINUE_TIMEOUT", "1s", "Expect-continue timeout (accepted for compatibility; requests never sends Expect: 100-continue).", section="client")

    # providers: <ID>_API_URL and <ID>_API_KEY, from the catalog
    provider_urls: dict[str, str] = field(default_factory=dict)
    provider_keys: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse every setting from `environ` (default: `.env` file, then os.environ over it)."""
        if environ is None:
            environ = environment_with_dotenv()
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in declared_fields():
            raw = environ.get(f.metadata["env"], f.metadata["default"])
            try:
                values[f.name] = PARSERS[hints[f.name]](raw)
            except ValueError as exc:
                shown = "<hidden>" if f.metadata["secret"] else repr(raw)
                raise ConfigError(f"invalid {f.metadata['env']}={shown}: {exc}") from None
        urls = {pid: environ.get(f"{pid.upper()}_API_URL", "").strip() or spec.url
                for pid, spec in CATALOG.items()}
        keys = {pid: environ.get(f"{pid.upper()}_API_KEY", "").strip() for pid in CATALOG}
        for pid, url in urls.items():
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"invalid {pid.upper()}_API_URL={url!r}: expected an http:// or https:// URL")
        settings = cls(**values, provider_urls=urls, provider_keys=keys)
        settings.check()
        return settings

    def check(self) -> None:
        """Cross-field checks that a single parser cannot make."""
        if self.client_tls_min_version.upper() not in ("TLS12", "TLS13"):
            raise ConfigError(f"invalid CLIENT_TLS_MIN_VERSION={self.client_tls_min_version!r}: expected TLS12 or TLS13")
        if bool(self.server_tls_cert_path) != bool(self.server_tls_key_path):
            raise ConfigError("invalid SERVER_TLS_CERT_PATH/SERVER_TLS_KEY_PATH: set both or neither")
        if self.auth_enable:
            self.check_auth()
        self.check_accounts()
        for name, least in (("web_concurrency", 1), ("worker_connections", 1), ("client_max_idle_conns", 0),
                            ("client_max_idle_conns_per_host", 0), ("server_port", 1)):
            if getattr(self, name) < least:
                env = next(f.metadata["env"] for f in declared_fields() if f.name == name)
                raise ConfigError(f"invalid {env}={getattr(self, name)!r}: must be at least {least}")

    def check_auth(self) -> None:
        issuer = self.auth_oidc_issuer.strip()
        if issuer and not issuer.startswith(("http://", "https://")):
            raise ConfigError(f"invalid AUTH_OIDC_ISSUER={issuer!r}: expected an http:// or https:// URL")
        if not issuer and not self.auth_api_keys and not self.auth_api_keys_file and not self.accounts_enable:
            raise ConfigError("invalid AUTH_ENABLE=true: set AUTH_OIDC_ISSUER, AUTH_API_KEYS or AUTH_API_KEYS_FILE "
                              "(or ACCOUNTS_ENABLE=true, for virtual keys)")
        path = self.auth_api_keys_file
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise ConfigError(f"invalid AUTH_API_KEYS_FILE={path!r}: not a readable file")

    def check_accounts(self) -> None:
        database_url_problem = check_database_url(self.database_url)
        if database_url_problem:
            raise ConfigError(f"invalid DATABASE_URL={mask_database_url(self.database_url)!r}: {database_url_problem}")
        if self.admin_api_key and len(self.admin_api_key.strip()) < 16:
            raise ConfigError("invalid ADMIN_API_KEY=<hidden>: use at least 16 characters")
        if not 0 < self.usage_flush_interval <= 60:
            raise ConfigError(f"invalid USAGE_FLUSH_INTERVAL={self.usage_flush_interval:g}s: must be more than 0 and at most 60s")
        if self.usage_buffer_rows < 100:
            raise ConfigError(f"invalid USAGE_BUFFER_ROWS={self.usage_buffer_rows!r}: must be at least 100")

    @property
    def development(self) -> bool:
        return self.environment.strip().lower() == "development"

    def secret_values(self) -> list[str]:
        """Every configured secret, so logs can redact them."""
        found = [v for v in self.provider_keys.values() if v]
        for f in declared_fields():
            if f.metadata["secret"]:
                value = getattr(self, f.name)
                found.extend(value if isinstance(value, tuple) else [value])
        found.append(database_password(self.database_url))
        return [v for v in found if v and len(v) >= 4]


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


def declared_fields() -> list:
    return [f for f in fields(Settings) if "env" in f.metadata]


def environment_with_dotenv(path: str = ".env") -> dict[str, str]:
    """The `.env` file's values (when present) overridden by the real environment."""
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(path).items() if v is not None} if os.path.exists(path) else {}
    values.update(os.environ)
    return values


def configuration_markdown() -> str:
    """The text of docs/configuration.md."""
    lines = ["# Configuration", "",
             "Generated from `app/config.py` by `make docs`;",
             "a test fails when this file is stale. Every setting is read once at start-up from the",
             "environment, or from a `.env` file in the working directory. Durations take Go-style",
             "values (`30s`, `1m30s`, `500ms`); booleans take true/false, 1/0, yes/no.", ""]
    by_section: dict[str, list] = {key: [] for key in SECTIONS}
    for f in declared_fields():
        by_section[f.metadata["section"]].append(
            (f.name, f.metadata["env"], f.metadata["default"], f.metadata["help"]))
    for pid, spec in CATALOG.items():
        by_section["providers"].append((f"{pid}_api_url", f"{pid.upper()}_API_URL", spec.url, f"{spec.display_name} API URL."))
        by_section["providers"].append((f"{pid}_api_key", f"{pid.upper()}_API_KEY", "", f"{spec.display_name} API key (secret; never logged or returned)."))
    for key, title in SECTIONS.items():
        lines += [f"## {title}", "", "| Name | Environment variable | Default | Description |",
                  "|---|---|---|---|"]
        for name, env, default, help_text in by_section[key]:
            shown = f"`{default}`" if default != "" else "(empty)"
            lines.append(f"| {name} | `{env}` | {shown} | {help_text} |")
        lines.append("")
    return "\n".join(lines)

