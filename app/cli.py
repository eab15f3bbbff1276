"""Flask commands: `flask --app wsgi doctor`, `flask --app wsgi db upgrade` and
`flask --app wsgi keys create|list|revoke|usage`.

`doctor` checks what the settings name (providers, the OIDC issuer, Redis, the database, MCP
servers, TLS files; app/doctor.py) and exits 1 when something is wrong: a deploy pre-check.
An invalid setting stops every command as it stops gunicorn's master: one line naming it, exit
status 2 (`SettingsRefused`, raised by the app factory while the command loads the app).

They work on DATABASE_URL whether or not ACCOUNTS_ENABLE is on (so keys can be made before the
gateway starts using them), validate like the admin API (the same schemas), and print JSON.
With DATABASE_AUTO_MIGRATE=true the `keys` commands bring the schema up to date first.
`keys create` prints the secret once; it is not stored anywhere.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from flask import Flask, current_app

if TYPE_CHECKING:
    from app.accounts.key_admin import KeyAdmin


class SettingsRefused(click.ClickException):
    """An invalid setting met while a `flask` command loads the app: the master's line, exit 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"inference-gateway: {self.message}", err=True)


def refuse_in_command(error: Exception) -> None:
    """Under a `flask` command, turn the app factory's ConfigError into the master's one line and
    exit status 2 (instead of a traceback); elsewhere (gunicorn, tests) the error goes on."""
    if click.get_current_context(silent=True) is not None:
        raise SettingsRefused(str(error)) from None


def init_app(app: Flask) -> None:
    app.cli.add_command(doctor)
    app.cli.add_command(db)
    app.cli.add_command(keys)


def _settings():
    from app.extensions import EXTENSION_KEY

    return current_app.extensions[EXTENSION_KEY].settings


@contextmanager
def _key_admin() -> Iterator[KeyAdmin]:
    from app.accounts.database import Database
    from app.accounts.key_admin import KeyAdmin
    from app.accounts.migrate import upgrade
    from app.accounts.store import KeyStore
    from app.errors import GatewayError

    settings = _settings()
    database = Database.from_url(settings.database_url)
    try:
        if settings.database_auto_migrate:
            upgrade(database)
        yield KeyAdmin(KeyStore(database), auth_enabled=settings.auth_enable)
    except GatewayError as exc:  # bad input, unknown id: the admin API's message
        raise click.ClickException(exc.message) from None
    finally:
        database.dispose()


def _print(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _loaded(schema_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    from app.errors import InvalidRequest
    from app.schemas import admin as schemas

    try:
        return schemas.load(getattr(schemas, schema_name), payload)
    except InvalidRequest as exc:
        raise click.UsageError(exc.message) from None


@click.command(help="Check every provider, the OIDC issuer, Redis, the database, MCP servers and TLS files the "
                    "settings name; exit 1 when one fails. Secrets are never printed.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def doctor(as_json: bool) -> None:
    import logging

    from app import doctor as checks

    logging.disable(logging.ERROR)  # each check's failure is in the table; the log would repeat it
    try:
        results = checks.examine(_settings())
    finally:
        logging.disable(logging.NOTSET)
    click.echo(checks.json_text(results) if as_json else checks.table(results))
    sys.exit(checks.exit_status(results))


@click.group(help="The database of virtual keys and usage.")
def db() -> None:
    pass


@db.command(help="Bring the schema up to date (Alembic migrations in migrations/).")
def upgrade() -> None:
    from app.accounts.database import Database
    from app.accounts.migrate import current_revision
    from app.accounts.migrate import upgrade as run_upgrade
    from app.config import mask_database_url

    settings = _settings()
    database = Database.from_url(settings.database_url)
    try:
        run_upgrade(database)
        click.echo(f"{mask_database_url(settings.database_url)} is at revision {current_revision(database)}")
    finally:
        database.dispose()


@click.group(help="Virtual keys: create, list, revoke, and their usage.")
def keys() -> None:
    pass


@keys.command(help="Create a key and print it with its secret (shown this once).")
@click.option("--name", required=True)
@click.option("--owner")
@click.option("--model", "models", multiple=True, help="An allowed provider/model id or alias (repeat); none: all.")
@click.option("--rpm", type=int, help="Requests per minute.")
@click.option("--tpm", type=int, help="Tokens per minute.")
@click.option("--budget-usd", type=float)
@click.option("--budget-period", type=click.Choice(["day", "month", "total"]))
@click.option("--expires-at", help="ISO 8601 date or date-time (UTC unless it names an offset).")
@click.option("--metadata", help="A JSON object.")
def create(name: str, owner: str | None, models: tuple[str, ...], rpm: int | None, tpm: int | None,
           budget_usd: float | None, budget_period: str | None, expires_at: str | None, metadata: str | None) -> None:
    payload: dict[str, Any] = {"name": name, "models": list(models)}
    for field, value in (("owner", owner), ("rpm", rpm), ("tpm", tpm), ("budget_usd", budget_usd),
                         ("budget_period", budget_period), ("expires_at", expires_at)):
        if value is not None:
            payload[field] = value
    if metadata is not None:
        try:
            payload["metadata"] = json.loads(metadata)
        except ValueError:
            raise click.UsageError("--metadata: not valid JSON") from None
    fields = _loaded("NEW_KEY", payload)
    with _key_admin() as admin:
        created = admin.create(fields)
    _print(created)
    click.echo("Store the secret now: it is not shown again.", err=True)


@keys.command(name="list", help="List every key (revoked ones too).")
def list_keys() -> None:
    with _key_admin() as admin:
        _print(admin.list())


@keys.command(help="Revoke a key (every worker refuses it within 2 s).")
@click.argument("key_id")
def revoke(key_id: str) -> None:
    with _key_admin() as admin:
        _print(admin.revoke(key_id))


@keys.command(help="Usage from the ledger, as JSON (or CSV).")
@click.option("--key", help="A key id.")
@click.option("--model", help="provider/model or a bare model name.")
@click.option("--from", "since", help="ISO 8601 date or date-time, inclusive.")
@click.option("--to", "until", help="ISO 8601 date or date-time, exclusive.")
@click.option("--group-by", type=click.Choice(["key", "model", "day"]))
@click.option("--csv", "as_csv", is_flag=True, help="CSV instead of JSON.")
def usage(key: str | None, model: str | None, since: str | None, until: str | None, group_by: str | None,
          as_csv: bool) -> None:
    from app.accounts.reports import UsageQuery

    args = {name: value for name, value in (("key", key), ("model", model), ("from", since), ("to", until),
                                            ("group_by", group_by)) if value is not None}
    query = UsageQuery(**_loaded("USAGE_ARGS", args))
    with _key_admin() as admin:
        report = admin.usage(query)
    if as_csv:
        sys.stdout.write(report.csv())
    else:
        _print({"data": report.rows, "totals": report.totals})
