"""Bringing the database schema up to date with Alembic (`migrations/`).

    upgrade(database)           to the newest revision; safe to run from several hosts at once
                                (PostgreSQL: under an advisory lock; SQLite serves one host)
    python -m app.accounts.migrate   what gunicorn's master runs at start-up when
                                DATABASE_AUTO_MIGRATE=true: in a child process, so the master never
                                imports SQLAlchemy before the workers' gevent patching
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import text

from app.accounts.database import DATABASE_ERRORS, Database

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
ADVISORY_LOCK_ID = 0x6761_7465_7761_79  # "gateway": one migration at a time per PostgreSQL database


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    config = alembic_config()
    with database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(database: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def main() -> int:
    from app.config import ConfigError, Settings, mask_database_url

    try:
        settings = Settings.from_environ()
    except ConfigError as exc:
        print(f"inference-gateway: {exc}", file=sys.stderr, flush=True)
        return 2
    database = Database.from_url(settings.database_url)
    try:
        upgrade(database)
    except (*DATABASE_ERRORS, CommandError) as exc:  # one line for the operator; the master stops
        reason = " ".join(str(exc).split())[:300]
        print(f"inference-gateway: cannot migrate DATABASE_URL={mask_database_url(settings.database_url)!r}: "
              f"{type(exc).__name__}: {reason}", file=sys.stderr, flush=True)
        return 2
    finally:
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
