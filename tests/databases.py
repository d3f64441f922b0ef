"""Real databases for the tests: a throw-away PostgreSQL cluster, or an external server.

``PostgresCluster`` runs ``initdb`` and ``postgres`` from PostgreSQL's own binaries (on
``PATH`` or under ``/usr/lib/postgresql/<version>/bin``) in a temporary folder, listening only
on a free loopback port. PostgreSQL refuses to run as root, so under root (CI) the cluster's
processes run as the unprivileged ``nobody`` user; its folder belongs to that user. The
server is a child of the test process, stopped by its pid (and sent SIGQUIT by the kernel if
the test process dies first).

``ExternalPostgres`` stands in for it when ``IMAGEDATA_TEST_DATABASE_URL`` names a database
of a server someone else runs.
"""
from __future__ import annotations

import ctypes
import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from urllib.parse import urlsplit, urlunsplit

from testkit.ports import free_port

UNPRIVILEGED_USER = "nobody"
# Durability is worthless for a cluster deleted at the end of the run: skip the fsyncs.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
    "TimeZone": "UTC",
}
PR_SET_PDEATHSIG = 1
_counter = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries are not installed here."""


def find_binary(name: str) -> str:
    """``name`` on PATH, else the newest ``/usr/lib/postgresql/<version>/bin/<name>`` (Debian)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0)
    if candidates:
        return candidates[-1]
    raise PostgresUnavailable(f"PostgreSQL's {name!r} is not installed (Debian: apt-get install postgresql)")


def _die_with_parent() -> None:
    """In the child, after it dropped privileges: SIGQUIT (immediate shutdown) if we die."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)


class PostgresServerBase:
    """What tests need from a PostgreSQL server: URLs and fresh databases."""

    host: str
    port: int
    user: str
    password: str | None = None
    maintenance_db: str = "postgres"

    def url(self, dbname: str) -> str:
        """A peewee/psycopg2 URL of ``dbname`` on this server."""
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str | None = None):
        """A psycopg2 connection in autocommit mode (DDL such as CREATE DATABASE)."""
        import psycopg2

        con = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=dbname or self.maintenance_db, connect_timeout=10)
        con.autocommit = True
        return con

    def execute(self, sql: str, dbname: str | None = None) -> None:
        """Run one statement outside a transaction."""
        con = self.connect(dbname)
        try:
            with con.cursor() as cur:
                cur.execute(sql)
        finally:
            con.close()

    def create_database(self, prefix: str = "imagedata", template: str | None = None) -> str:
        """A new empty database (a copy of ``template`` if given); returns its name."""
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database made by ``create_database``, disconnecting whoever is still on it."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PostgresCluster(PostgresServerBase):
    """A PostgreSQL cluster in a temp folder on a free loopback port, for one test session."""

    host = "127.0.0.1"
    user = "postgres"

    def __init__(self):
        self.initdb = find_binary("initdb")
        self.postgres = find_binary("postgres")
        self.root = None
        self.proc = None
        self.port = 0
        self.owner = pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else None

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def log_path(self) -> str:
        return os.path.join(self.root, "postgres.log")

    def _run_as_owner(self) -> dict:
        """Popen arguments that drop root to the unprivileged user (no-op otherwise)."""
        if self.owner is None:
            return {}
        return {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}

    def _env(self) -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.root, "LC_ALL": "C", "LANG": "C",
                "TZ": "UTC"}

    def start(self, timeout: float = 60.0) -> "PostgresCluster":
        """initdb, then start the server and wait until it accepts connections."""
        # Not under pytest's tmp folders: those are private to the invoking user (0700).
        self.root = tempfile.mkdtemp(prefix="imagedata-pg-")
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        done = subprocess.run([self.initdb, "-D", self.data_dir, "-U", self.user, "--auth=trust",
                               "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                              cwd=self.root, env=self._env(), capture_output=True, text=True,
                              timeout=timeout, **self._run_as_owner())
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stdout}{done.stderr}")
        self.port = free_port()
        args = [self.postgres, "-D", self.data_dir, "-p", str(self.port)]
        for name, value in SERVER_SETTINGS.items():
            args += ["-c", f"{name}={value}"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=self.root, env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent, **self._run_as_owner())
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: {self.log()}")
            try:
                self.connect().close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postgres did not accept connections in {timeout}s: {self.log()}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the server we started, by its pid; then remove its folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGQUIT)
                self.proc.wait(timeout=30)
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def log(self) -> str:
        """The end of the server's log."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except (OSError, TypeError):
            return ""


class ExternalPostgres(PostgresServerBase):
    """A server someone else runs, named by a database URL (IMAGEDATA_TEST_DATABASE_URL).

    The Flask-client tests use that very database (emptied before each test); tests that
    start servers create further databases next to it, which needs the CREATEDB privilege.
    """

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql", "postgresext", "postgresqlext"):
            raise ValueError(f"IMAGEDATA_TEST_DATABASE_URL must be a postgresql:// URL, not {url!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432
        self.user = parts.username or os.environ.get("USER", "postgres")
        self.password = parts.password
        self.database = parts.path.lstrip("/")
        self.maintenance_db = self.database
        self.given_url = urlunsplit(parts)

    def start(self) -> "ExternalPostgres":
        self.connect().close()
        return self

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""


FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def make_version_1_database(url: str, rows: bool = True) -> None:
    """Fill an empty database with the frozen version-1 schema (and its sample rows)."""
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    names = [f"{backend}.sql"] + (["rows.sql"] if rows else [])
    script = "\n".join(open(os.path.join(FIXTURES, "schema_v1", name), encoding="utf-8").read() for name in names)
    if backend == "sqlite":
        import sqlite3

        path = url.split("sqlite:///", 1)[1]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        con = sqlite3.connect(path)
        try:
            con.executescript(script)
        finally:
            con.close()
        return
    import psycopg2

    con = psycopg2.connect(url, connect_timeout=10)
    try:
        with con, con.cursor() as cur:
            cur.execute(script)
    finally:
        con.close()
