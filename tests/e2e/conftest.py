"""Fixtures that run the real service under gunicorn."""
import pytest

from tests.e2e.server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One gunicorn (2 gthread workers) per test module."""
    srv = Server(tmp_path_factory.mktemp("e2e")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def db_server(request, db_backend, server_database, tmp_path_factory):
    """The module's server on the database backend under test: ``server`` itself on SQLite, and a
    second gunicorn (2 workers) on a fresh PostgreSQL database."""
    if db_backend == "sqlite":
        yield request.getfixturevalue("server")
        return
    srv = Server(tmp_path_factory.mktemp(f"e2e-{db_backend}"), **server_database(db_backend)).start()
    yield srv
    srv.stop()


@pytest.fixture
def start_server(tmp_path):
    """Start a server with extra environment; stopped after the test."""
    started = []

    def factory(**env):
        srv = Server(tmp_path / f"srv{len(started)}", **env).start()
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()
