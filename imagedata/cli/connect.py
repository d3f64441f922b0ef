"""How an `imagedata` command gets its app and its database.

The app is built only when a command runs (``--help`` and ``--version`` touch no file), and
without the server's start-up work: no data folder, no store folder. A command that reads the
database first checks that the database is there and on this code's schema; when it is not,
the error names the database it looked at, and nothing has been created.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from urllib.parse import urlsplit

import click
from flask import Flask, current_app

from imagedata import metrics
from imagedata.config import ConfigError, Settings
from imagedata.db import UNAVAILABLE_ERRORS, database
from imagedata.migrations import SchemaError, check_schema
from imagedata.stores import prepare_stores

SETTINGS_HINT = "IMAGEDATA_DATA_DIR or IMAGEDATA_DATABASE_URL"


def load_command_app() -> Flask:
    """The app of one command run (ScriptInfo's factory): built on first use, never prepared."""
    from imagedata.app import create_app

    # Before anything records a metric: findings of scrub, verify and recover reach the
    # server's /metrics when it runs on this host.
    command = click.get_current_context().find_root().invoked_subcommand or "cli"
    metrics.share_with_server(os.environ, command)
    try:
        return create_app(prepare=False)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def safe_url(url: str) -> str:
    """A database URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def sqlite_path(url: str) -> str | None:
    """The file of an SQLite URL (absolute), or None for other databases and in-memory ones."""
    if not url.startswith("sqlite"):
        return None
    path = urlsplit(url).path[1:]  # as peewee reads it: sqlite:///rel.db, sqlite:////abs.db
    if not path or path == ":memory:":
        return None
    return os.path.abspath(path)


def database_name(settings: Settings) -> str:
    """How messages name the database: the SQLite file's absolute path, or the URL without password."""
    return sqlite_path(settings.database_url) or safe_url(settings.database_url)


def refuse_missing_database(settings: Settings) -> None:
    """An SQLite file that does not exist is not created by a command that only reads."""
    path = sqlite_path(settings.database_url)
    if path is not None and not os.path.exists(path):
        raise click.ClickException(
            f"no database at {path} (from {SETTINGS_HINT}, or ./var of the current folder): run this "
            "command where `make run` runs, set those variables as the server has them, or create "
            "the database with `imagedata db-sync`")


@contextmanager
def connected(stores: bool = False):
    """A database connection for one command, on the schema this code needs.

    ``stores=True`` also runs the stores' start-up checks (creating a missing folder), once the
    database is known to be there. Every failure names the database.
    """
    settings = current_app.config["IMAGEDATA"]
    name = database_name(settings)
    refuse_missing_database(settings)
    try:
        with database.connection_context():
            try:
                check_schema()
            except SchemaError as exc:
                raise click.ClickException(f"{exc} (database: {name})") from None
            if stores:
                try:
                    prepare_stores(current_app.extensions["imagedata"].stores)
                except ConfigError as exc:
                    raise click.ClickException(f"configuration: {exc}") from None
            yield
    except UNAVAILABLE_ERRORS as exc:
        raise click.ClickException(f"the database {name} cannot be used: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (drivers add hints on further lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
