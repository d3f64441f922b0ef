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


def prepared(model, key: str, build, **values) -> list:
    """Run a hot query whose SQL is generated once per database and reused; return its rows.

    ``build(**markers)`` returns a ``model.select()`` query with marker values in place of
    the real ones; the SQL text peewee generates for it (for the database in use, so still
    portable) is cached, and later calls only bind ``values``. The rows come back as
    ``model`` instances, built from a column-to-field map resolved once per query instead
    of per execution (peewee's raw queries resolve it on every call: a tenth of a
    metadata GET).
    """
    # Keyed by the database's class, not the instance: the SQL depends only on the dialect,
    # and the id of a closed database may be reused by a new one of another kind.
    cache_key = (type(database.obj), key)
    entry = _PREPARED.get(cache_key)
    if entry is None:
        markers = {name: f"\x00{name}\x00" for name in values}
        sql, params = build(**markers).sql()
        names = {marker: name for name, marker in markers.items()}
        entry = _PREPARED[cache_key] = [sql, [(names.get(p), p) for p in params], None]
    sql, slots, fields = entry
    cursor = database.execute_sql(sql, [values[name] if name else fixed for name, fixed in slots])
    if fields is None:
        fields = entry[2] = _selected_fields(model, cursor.description)
    return [_instance(model, fields, row) for row in cursor.fetchall()]


def _selected_fields(model, description) -> list:
    """The model field behind each column of a result (by column name)."""
    by_column = model._meta.columns
    try:
        return [by_column[column[0]] for column in description]
    except KeyError as exc:
        raise ValueError(f"prepared query on {model.__name__} selects {exc}, not a column of it") from None


def _instance(model, fields, row):
    """A clean (not dirty) ``model`` instance from one result row, converted as peewee would."""
    obj = model(__no_default__=1)
    obj.__data__ = {field.name: field.python_value(value) for field, value in zip(fields, row)}
    return obj


def close_pool() -> None:
    """Close this thread's connection and every pooled one (before a fork, or when done with a database)."""
    if database.obj is None:
        return
    if not database.is_closed():
        database.close()
    close_all = getattr(database.obj, "close_all", None)
    if close_all is not None:
        close_all()
