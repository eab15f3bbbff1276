"""`flask --app wsgi doctor`: is everything the settings name reachable and usable, right now?

    results = examine(settings)          # one Result per check, in a stable order
    print(table(results))                # or json_text(results); exit_status(results): 0 or 1

The settings themselves were read and checked before this runs (an invalid one never gets here:
the command prints the master's one line and exits 2). Each check goes through the code path the
gateway itself uses, so the doctor sees what the gateway would see:

    settings   warnings: what is set but does nothing (ignored settings), AUTH_ENABLE=false on an
               address beyond loopback, /metrics (no auth) on every interface or a public
               address; else the configuration file's deployments and aliases
    provider   every configured provider and deployment: its model list, as GET /v1/models
               asks for it (`Provider.list_models`), with the latency
    oidc       with AUTH_ENABLE and AUTH_OIDC_ISSUER: discovery and the JWKS (`OidcVerifier`)
    redis      with a redis:// RATE_LIMIT_STORAGE_URI: a ping through the `limits` storage the
               rate limits, failed-login counter and virtual keys use (`open_storage`)
    database   with ACCOUNTS_ENABLE: connect, and the schema's Alembic revision against the
               code's head (behind: a failure with DATABASE_AUTO_MIGRATE=false, else a warning,
               since gunicorn's master migrates at start-up)
    mcp        with MCP_ENABLE: initialize and tools/list on each server (`MCPClient`)
    tls        with SERVER_TLS_CERT_PATH: the pair loads, and the certificate's expiry date
               (expired: fail; within EXPIRY_WARNING_DAYS: warn)

A check that does not apply (OIDC with auth off, Redis with `memory://` ...) is listed as
`skip`, saying why, so the table shows what was not looked at. The checks run at once, each in
a daemon thread with its own time limit (the flask command has no gevent; a check stuck past
its limit is reported and left behind). A result shows where it
looked without secrets: URLs lose their credentials and query (`display_url`), DATABASE_URL its
password, a provider's error body is never shown (only its status), and every configured secret
is replaced by `***` in whatever is printed, as a last guard.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.config import Settings, mask_database_url
from app.errors import GatewayError, UpstreamStatus
from app.limit_storage import REDIS_SCHEMES
from app.mcp.client import display_url

if TYPE_CHECKING:
    from app.providers.provider import Provider

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
EXPIRY_WARNING_DAYS = 14
SLACK = 1.0  # seconds beyond a check's own timeouts before it is given up on
REDIS_CHECK_TIMEOUT = 5.0  # the storage's socket timeouts are 2 s (app.limit_storage)
DATABASE_CHECK_TIMEOUT = 15.0  # pg8000's socket timeout is 10 s (app.accounts.database)
UPGRADE_HINT = "run `flask --app wsgi db upgrade`"


@dataclass(frozen=True)
class Result:
    name: str  # settings, provider, oidc, redis, database, mcp, tls
    target: str  # where it looked, without secrets
    status: str  # ok | warn | fail | skip
    detail: str
    latency_ms: float | None = None


@dataclass(frozen=True)
class Check:
    name: str
    target: str
    timeout: float
    run: Callable[[], tuple[str, str]]  # (status, detail); may raise


def skipped(name: str, why: str) -> Check:
    return Check(name, "-", 0.0, lambda: (SKIP, why))


def examine(settings: Settings) -> list[Result]:
    """Run every check that applies to `settings`, concurrently; the results in check order."""
    checks = list(planned_checks(settings))
    runs = [_Run(check) for check in checks]
    for run in runs:
        run.thread.start()
    results = [run.result() for run in runs]
    # DATABASE_URL is a secret as a whole in logs; here it is shown masked (its password is still
    # redacted). The OIDC client id is public (every token carries it) and often a plain word.
    shown = {settings.database_url, settings.auth_oidc_client_id}
    secrets = [secret for secret in settings.secret_values() if secret not in shown]
    return [_redacted(result, secrets) for result in results]


def planned_checks(settings: Settings) -> Iterable[Check]:
    yield _settings_check(settings)
    yield from _provider_checks(settings)
    if not settings.auth_enable:
        yield skipped("oidc", "AUTH_ENABLE=false")
    elif not settings.auth_oidc_issuer.strip():
        yield skipped("oidc", "AUTH_OIDC_ISSUER is empty (OIDC off)")
    else:
        yield _oidc_check(settings)
    if settings.rate_limit_storage_uri.startswith(REDIS_SCHEMES):
        yield _redis_check(settings)
    else:
        yield skipped("redis", f"RATE_LIMIT_STORAGE_URI={settings.rate_limit_storage_uri.split(':')[0]}://")
    yield _database_check(settings) if settings.accounts_enable else skipped("database", "ACCOUNTS_ENABLE=false")
    if settings.mcp_enable:
        yield from _mcp_checks(settings)
    else:
        yield skipped("mcp", "MCP_ENABLE=false")
    yield _tls_check(settings) if settings.server_tls_cert_path else skipped("tls", "SERVER_TLS_CERT_PATH is empty")


def exit_status(results: Iterable[Result]) -> int:
    """1 when any check failed, else 0 (warnings and skipped checks pass)."""
    return 1 if any(result.status == FAIL for result in results) else 0


def table(results: list[Result]) -> str:
    """One aligned plain-text table, a summary line under it."""
    header = ("CHECK", "TARGET", "STATUS", "LATENCY", "DETAIL")
    rows = [(r.name, r.target, r.status.upper(), "" if r.latency_ms is None else f"{r.latency_ms:.0f} ms", r.detail)
            for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4]
             for row in [header, *rows]]
    counts = {status: sum(r.status == status for r in results) for status in (FAIL, WARN, OK, SKIP)}
    lines.append("")
    lines.append(", ".join(f"{n} {status}" for status, n in counts.items() if n) or "nothing to check")
    return "\n".join(line.rstrip() for line in lines)


def json_text(results: list[Result]) -> str:
    return json.dumps({"ok": exit_status(results) == 0, "checks": [asdict(r) for r in results]}, indent=2)


def counted(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


# -- running ---------------------------------------------------------------------------------
class _Run:
    """One check in its own daemon thread (a stuck one never keeps the command from exiting)."""

    def __init__(self, check: Check):
        self.check = check
        self.outcome: tuple[str, str] | None = None
        self.latency_ms: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"doctor-{check.name}", daemon=True)
        self.started = time.monotonic()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self.outcome = self.check.run()
        except UpstreamStatus as exc:  # the body may echo the key: only the status is shown
            self.outcome = (FAIL, f"answered HTTP {exc.status}")
        except GatewayError as exc:
            self.outcome = (FAIL, exc.message)
        except Exception as exc:  # noqa: BLE001 - any failure is the check's result
            self.outcome = (FAIL, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        self.latency_ms = (time.perf_counter() - started) * 1000
        self.done.set()

    def result(self) -> Result:
        check = self.check
        remaining = check.timeout - (time.monotonic() - self.started)
        if not self.done.wait(max(remaining, 0.05)):
            return Result(check.name, check.target, FAIL, f"no answer within {check.timeout:g}s")
        status, detail = self.outcome or (FAIL, "no result")
        latency = None if status == SKIP else round(self.latency_ms or 0, 1)
        return Result(check.name, check.target, status, detail, latency)


def _redacted(result: Result, secrets: list[str]) -> Result:
    target, detail = result.target, result.detail
    for secret in secrets:
        target, detail = target.replace(secret, "***"), detail.replace(secret, "***")
    return Result(result.name, target, result.status, detail, result.latency_ms)


# -- the checks ------------------------------------------------------------------------------
def _settings_check(settings: Settings) -> Check:
    def run() -> tuple[str, str]:
        from app.auth.guard import open_to_the_network

        warnings = [line.split(":")[0] for line in settings.ignored_settings()]
        if not settings.auth_enable and open_to_the_network(settings):
            warnings.insert(0, "AUTH_ENABLE=false on an address beyond loopback: anyone who can reach it can spend "
                               "the provider keys")
        if settings.telemetry_enable and _metrics_exposed(settings):
            warnings.append(f"GET /metrics has no auth and listens on every interface or a public address "
                            f"(port {settings.telemetry_metrics_port}): bind SERVER_HOST to loopback or a private "
                            f"address, or firewall the port")
        file = settings.gateway_config.strip()
        summary = (f"valid; {counted(len(settings.deployments), 'deployment')}, "
                   f"{counted(len(settings.aliases), 'alias', 'aliases')} in {file}"
                   if file else "valid")
        return (WARN, "; ".join(warnings)) if warnings else (OK, summary)

    target = ".env + environment" + (f" + {settings.gateway_config.strip()}" if settings.gateway_config.strip() else "")
    return Check("settings", target, 1.0, run)


def _metrics_exposed(settings: Settings) -> bool:
    """Whether the metrics port listens on all interfaces or a public address (as the gateway's own)."""
    host = "0.0.0.0" if settings.port is not None else settings.server_host.strip().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name: its addresses are the operator's business
        return False
    return address.is_unspecified or address.is_global


def _provider_checks(settings: Settings) -> Iterable[Check]:
    from app.providers.provider import Providers
    from app.providers.routing import ModelPolicy

    every = Providers(settings)
    providers = every.configured()
    if not providers:
        yield Check("provider", "(none configured)", 0.1,
                    lambda: (WARN, "no provider is configured: set <PROVIDER>_API_KEY or GATEWAY_CONFIG deployments"))
        return
    policy = ModelPolicy(settings.allowed_models, settings.disallowed_models,
                         providers=[p.id for p in every])
    headers = settings.client_response_header_timeout or settings.client_timeout
    timeout = (headers or 30.0) + (settings.client_timeout or 30.0) + SLACK

    def listing(provider: Provider) -> Callable[[], tuple[str, str]]:
        def run() -> tuple[str, str]:
            try:
                models = provider.list_models()
            except UpstreamStatus as exc:  # its body may echo the key: only the status is shown
                hint = f" (check {provider.key_env})" if exc.status in (401, 403) else ""
                return FAIL, f"answered HTTP {exc.status} to the model list{hint}"
            allowed = sum(policy.allows(m["id"]) for m in models)
            if not models:
                return WARN, "the model list is empty"
            detail = counted(len(models), "model")
            if policy.active:
                detail += f", {allowed} allowed by ALLOWED_MODELS/DISALLOWED_MODELS"
            return (OK if allowed else WARN), detail
        return run

    for provider in providers:
        yield Check("provider", f"{provider.id} {display_url(provider.base_url)}", timeout, listing(provider))


def _oidc_check(settings: Settings) -> Check:
    from app.auth.oidc import OidcVerifier

    headers = settings.client_response_header_timeout or settings.client_timeout
    timeout = 2 * ((headers or 30.0) + (settings.client_timeout or 30.0)) + SLACK  # discovery, then the JWKS

    def run() -> tuple[str, str]:
        verifier = OidcVerifier.from_settings(settings)
        try:
            keys = verifier.signing_keys()
        except GatewayError as exc:
            return FAIL, verifier.last_problem or exc.message
        return OK, f"discovery and JWKS: {counted(len(keys.keys), 'signing key')}"

    return Check("oidc", display_url(settings.auth_oidc_issuer.strip()), timeout, run)


def _redis_check(settings: Settings) -> Check:
    from app.limit_storage import open_storage

    uri = settings.rate_limit_storage_uri

    def run() -> tuple[str, str]:
        storage = open_storage(uri, settings.rate_limit_key_prefix)
        if storage.check():
            return OK, "answers PING"
        return FAIL, "cannot be reached (RATE_LIMIT_STORAGE_URI)"

    return Check("redis", display_url(uri), REDIS_CHECK_TIMEOUT, run)


def _database_check(settings: Settings) -> Check:
    def run() -> tuple[str, str]:
        from alembic.script import ScriptDirectory

        from app.accounts.database import DATABASE_ERRORS, Database
        from app.accounts.migrate import alembic_config, current_revision

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        sqlite_file = _sqlite_file(settings.database_url)
        if sqlite_file is not None and not os.path.exists(sqlite_file):  # connecting would create it
            directory = os.path.dirname(os.path.abspath(sqlite_file))
            if not os.access(directory, os.W_OK | os.X_OK):
                return FAIL, f"the file does not exist, and its directory {directory} is missing or not writable"
            current = None
        else:
            database = Database.from_url(settings.database_url)
            try:
                current = current_revision(database)
            except DATABASE_ERRORS as exc:
                return FAIL, _database_problem(exc)
            finally:
                database.dispose()
        if current == head:
            return OK, f"schema at revision {head}"
        if current is not None and current not in _known_revisions():
            return FAIL, f"schema at revision {current}, which this code does not know (newer code migrated it?)"
        behind = f"schema at revision {current or '(none)'}, code at {head}"
        if settings.database_auto_migrate:
            return WARN, f"{behind}: gunicorn will migrate it at start-up (DATABASE_AUTO_MIGRATE=true)"
        return FAIL, f"{behind}: {UPGRADE_HINT}"

    return Check("database", mask_database_url(settings.database_url), DATABASE_CHECK_TIMEOUT, run)


def _sqlite_file(url: str) -> str | None:
    """The file of a sqlite:/// URL (relative to the working directory, as the gateway opens it)."""
    scheme, sep, rest = url.strip().partition(":///")
    if not sep or not scheme.startswith("sqlite"):
        return None
    return rest.split("?")[0]


def _database_problem(exc: BaseException) -> str:
    """The driver's own words (SQLAlchemy wraps them with a statement and a link)."""
    cause = getattr(exc, "orig", None) or exc
    return f"cannot connect: {type(cause).__name__}: {' '.join(str(cause).split())[:200]}"


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    from app.accounts.migrate import alembic_config

    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _mcp_checks(settings: Settings) -> Iterable[Check]:
    from app.mcp.catalog import ToolFilter
    from app.mcp.client import MCPClient

    if not settings.mcp_servers:
        yield Check("mcp", "(no MCP_SERVERS)", 0.1, lambda: (WARN, "MCP_ENABLE=true but MCP_SERVERS is empty"))
        return
    exchange = settings.mcp_client_timeout or (settings.mcp_response_header_timeout + settings.mcp_request_timeout)
    timeout = 3 * exchange + SLACK  # initialize, initialized, tools/list
    tool_filter = ToolFilter(settings.mcp_include_tools, settings.mcp_exclude_tools)

    def listing(url: str) -> Callable[[], tuple[str, str]]:
        def run() -> tuple[str, str]:
            client = MCPClient.from_settings(url, settings)
            try:
                client.initialize()
                tools = client.list_tools()
            finally:
                client.close()
            offered = [tool.name for tool in tools if tool_filter.allows(tool.name)]
            if not offered:
                return WARN, f"{counted(len(tools), 'tool')}, none offered (MCP_INCLUDE_TOOLS/MCP_EXCLUDE_TOOLS)"
            shown = ", ".join(offered[:5]) + (", ..." if len(offered) > 5 else "")
            return OK, f"{counted(len(offered), 'tool')} offered: {shown}"
        return run

    for url in settings.mcp_servers:
        yield Check("mcp", display_url(url), timeout, listing(url))


def _tls_check(settings: Settings, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Check:
    cert_path, key_path = settings.server_tls_cert_path, settings.server_tls_key_path

    def run() -> tuple[str, str]:
        from cryptography import x509

        from app.config import ConfigError, check_tls_pair

        try:
            check_tls_pair(cert_path, key_path)  # readable, parses, the key matches: as gunicorn loads it
        except ConfigError as exc:
            return FAIL, str(exc)
        with open(cert_path, "rb") as handle:
            certificate = x509.load_pem_x509_certificate(handle.read())
        expires = certificate.not_valid_after_utc
        left = expires - now()
        when = expires.strftime("%Y-%m-%d %H:%M UTC")
        if left.total_seconds() <= 0:
            return FAIL, f"the certificate expired on {when}"
        if left.days < EXPIRY_WARNING_DAYS:
            return WARN, f"the certificate expires on {when}, in {counted(left.days, 'day')}"
        return OK, f"the pair loads; the certificate expires on {when}, in {counted(left.days, 'day')}"

    return Check("tls", cert_path, 5.0, run)
