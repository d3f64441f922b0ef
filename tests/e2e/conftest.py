"""Fixtures that run the real service under gunicorn."""
import pytest

from tests.e2e.server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One gunicorn (2 gthread workers) per test module."""
    srv = Server(tmp_path_factory.mktemp("e2e")).start()
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
