"""The metadata database: one proxy, initialised from a URL at start-up."""
from __future__ import annotations

from peewee import DatabaseProxy, OperationalError, InterfaceError
from playhouse.db_url import connect

database = DatabaseProxy()

# Errors that mean "the database is not answering right now" (locked, gone, refused).
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
}


def init_database(url: str, busy_timeout_ms: int = 10000):
    """Point the shared proxy at the database named by ``url`` and return it."""
    kwargs = {}
    if url.startswith("sqlite"):
        kwargs["pragmas"] = {**SQLITE_PRAGMAS, "busy_timeout": busy_timeout_ms}
        kwargs["timeout"] = busy_timeout_ms / 1000
    db = connect(url, **kwargs)
    database.initialize(db)
    return db


def write_transaction():
    """A transaction that takes the write lock up front.

    SQLite's default (deferred) transactions fail at once, without waiting, when a
    transaction that has read tries to write after another writer committed; taking
    the lock first makes concurrent writers queue on the busy timeout instead.
    """
    from peewee import SqliteDatabase

    if isinstance(database.obj, SqliteDatabase):
        return database.atomic(lock_type="IMMEDIATE")
    return database.atomic()


def create_tables() -> None:
    """Create every table that does not exist yet (idempotent)."""
    from imagedata import models

    with database.connection_context():
        database.create_tables(models.ALL_MODELS, safe=True)
