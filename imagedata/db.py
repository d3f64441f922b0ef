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


POOLED_SCHEMES = ("sqlite", "postgres", "postgresql", "postgresext", "postgresqlext", "psycopg3")


def pooled_url(url: str) -> str:
    """Use peewee's connection pool: requests still connect and close, but the
    connection (and its set-up pragmas) is reused instead of opened every time."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}+pool{sep}{rest}" if scheme in POOLED_SCHEMES else url


def init_database(url: str, busy_timeout_ms: int = 10000):
    """Point the shared proxy at the database named by ``url`` and return it."""
    kwargs = {"max_connections": 64, "stale_timeout": 300}
    if url.startswith("sqlite"):
        kwargs["pragmas"] = {**SQLITE_PRAGMAS, "busy_timeout": busy_timeout_ms}
        kwargs["timeout"] = busy_timeout_ms / 1000
        # Pooled connections move between threads, one thread at a time.
        kwargs["check_same_thread"] = False
    pooled = pooled_url(url)
    if "+pool" not in pooled:
        kwargs.pop("max_connections")
        kwargs.pop("stale_timeout")
    db = connect(pooled, **kwargs)
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


_PREPARED: dict = {}


def prepared(model, key: str, build, **values):
    """Run a hot query whose SQL is generated once per database and reused.

    ``build(**markers)`` returns the peewee query with marker values in place of the
    real ones; the SQL text peewee generates for it (for the database in use, so
    still portable) is cached, and later calls only bind ``values``.
    """
    # Keyed by the database's class, not the instance: the SQL depends only on the dialect,
    # and the id of a closed database may be reused by a new one of another kind.
    cache_key = (type(database.obj), key)
    entry = _PREPARED.get(cache_key)
    if entry is None:
        markers = {name: f"\x00{name}\x00" for name in values}
        sql, params = build(**markers).sql()
        names = {marker: name for name, marker in markers.items()}
        entry = _PREPARED[cache_key] = (sql, [(names.get(p), p) for p in params])
    sql, slots = entry
    return model.raw(sql, *[values[name] if name else fixed for name, fixed in slots])


def close_pool() -> None:
    """Close this thread's connection and every pooled one (before a fork, or when done with a database)."""
    if database.obj is None:
        return
    if not database.is_closed():
        database.close()
    close_all = getattr(database.obj, "close_all", None)
    if close_all is not None:
        close_all()
