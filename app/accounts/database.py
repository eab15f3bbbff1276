"""The database behind virtual keys and the usage ledger: one SQLAlchemy engine per process.

    Database.from_url(url)    the engine and its session factory (built by the app factory,
                              the CLI or a test, never at import time: gevent patches first)
    with db.session() as s:   a session in a transaction, committed on success

Two kinds of database:

- SQLite (`sqlite:///gateway.db`, the default) for one host: the file is opened in WAL mode
  (readers never wait for the writer) with `synchronous=NORMAL` and a 5 s busy timeout, so the
  workers of one host share it. sqlite3 is a C library: under gevent a query holds the worker's
  event loop for its duration, which is short here (the request path never queries; the
  background writer and the key refresh do, about once a second).
- PostgreSQL for several hosts, through **pg8000**. Why that driver: it is pure Python and talks
  to the server over the standard `socket` module, which the gevent worker patches, so a worker
  waiting for PostgreSQL runs its other requests meanwhile (tests/accounts/test_gevent_postgres.py
  shows it with `pg_sleep`). psycopg2 would need psycogreen's wait callback installed in every
  worker, and psycopg 3 relies on its own gevent detection; both add a compiled libpq to install.
  pg8000 is slower per query than libpq, which does not matter for a database the hot path
  never touches. `postgresql://` URLs are read as `postgresql+pg8000://`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

# What a failing or unreachable database raises (the drivers' errors come wrapped by SQLAlchemy).
DATABASE_ERRORS = (SQLAlchemyError, OSError)
SQLITE_BUSY_TIMEOUT_S = 5
POSTGRES_TIMEOUT_S = 10  # pg8000's socket timeout: connect and each answer


def engine_url(url: str) -> URL:
    parsed = make_url(url.strip())
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+pg8000")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str) -> Database:
        parsed = engine_url(url)
        if parsed.get_backend_name() == "sqlite":
            # Connections move between threads in tests and the CLI; the pool hands each to one user at a time.
            engine = create_engine(parsed, connect_args={"check_same_thread": False,
                                                         "timeout": SQLITE_BUSY_TIMEOUT_S})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_size=5, max_overflow=5, pool_pre_ping=True, pool_recycle=1800,
                                   connect_args={"timeout": POSTGRES_TIMEOUT_S})
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
