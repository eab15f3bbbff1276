"""Alembic's environment: run by `app.accounts.migrate.upgrade` (and so by `flask --app wsgi db upgrade`
and gunicorn's start-up with DATABASE_AUTO_MIGRATE=true), or by the `alembic` command with
alembic.ini (its URL comes from DATABASE_URL, as the gateway reads it)."""

from __future__ import annotations

from alembic import context

from app.accounts.models import Base

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # the alembic command line
        from app.accounts.database import Database
        from app.config import Settings

        database = Database.from_url(Settings.from_environ().database_url)
        with database.engine.begin() as connection:
            _run(connection)
        database.dispose()
        return
    _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them against the database")
run_migrations_online()
