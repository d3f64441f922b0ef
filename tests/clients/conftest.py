"""Fixtures for the client suite: module-scoped gunicorn servers, tokens and data files."""
from __future__ import annotations

import pytest

from tests.clients.helpers import BIG_SIZE, CAP, DATA_SIZE, make_file


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Module scratch folder: client HOMEs, data files, downloads."""
    return tmp_path_factory.mktemp("clients")


@pytest.fixture(scope="module")
def server(start_module_server):
    """Token auth (the default) with a small size cap, so 413s need only a few MiB."""
    return start_module_server("srv-token", IMAGEDATA_IMAGE_SIZE_CAP=CAP)


@pytest.fixture(scope="module")
def noauth_server(start_module_server):
    """IMAGEDATA_AUTH=noauth, for ``openstack --os-auth-type none``."""
    return start_module_server("srv-noauth", IMAGEDATA_AUTH="noauth", IMAGEDATA_IMAGE_SIZE_CAP=CAP)


@pytest.fixture(scope="module")
def member(server):
    """A member (and reader) of project p1: not an admin."""
    return server.token("p1", "member,reader")


@pytest.fixture(scope="module")
def admin(server):
    return server.token("ops", "admin")


@pytest.fixture(scope="module")
def data_file(workdir):
    """(path, bytes) of a small image under the cap."""
    path = workdir / "data.raw"
    return str(path), make_file(path, DATA_SIZE, 1)


@pytest.fixture(scope="module")
def big_file(workdir):
    """(path, bytes) of an image over the cap."""
    path = workdir / "big.raw"
    return str(path), make_file(path, BIG_SIZE, 2)

