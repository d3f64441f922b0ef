"""Fixtures of the import tests: one gunicorn allowed to fetch from the module's origin (tests/conftest.py), callers."""
from __future__ import annotations

import pytest

from tests.imports.helpers import MIB, Api

CAP = 12 * MIB  # IMAGEDATA_IMAGE_SIZE_CAP of the module servers
IDLE = 3  # IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT, seconds


@pytest.fixture(scope="module")
def server(start_module_server, origin):
    """Two filesystem stores (``local`` the default, ``slow``), web-download allowed to the
    origin only, a short idle timeout and a small size cap; INFO logs, so that a test can
    read every line the service wrote."""
    return start_module_server("imports", IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS=f"127.0.0.1:{origin.port}",
                               IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT=IDLE, IMAGEDATA_IMAGE_SIZE_CAP=CAP,
                               IMAGEDATA_LOG_LEVEL="INFO")


@pytest.fixture(scope="module")
def member(server) -> Api:
    """A member of project p1 (the images' owner)."""
    return Api(server.url, server.token("p1", "member,reader"))


@pytest.fixture(scope="module")
def admin(server) -> Api:
    return Api(server.url, server.token("ops", "admin"))


@pytest.fixture(scope="module")
def stranger(server) -> Api:
    """A member of another project."""
    return Api(server.url, server.token("p2", "member,reader"))
