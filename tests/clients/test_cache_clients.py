"""This host's image cache through the real clients: ``glance cache-*`` (python-glanceclient)
and ``openstack cached image ...`` (openstackclient/openstacksdk), on a server whose images
live in SeaweedFS."""
from __future__ import annotations

import json
import os
import sys
import time

import pytest
import requests

from tests.clients.helpers import assert_clean_error, run_client, table_rows
from tests.e2e.cachekit import MIB, cache_server, listed, upload

pytestmark = pytest.mark.e2e

BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def relay(s3_forwarder):
    """In front of SeaweedFS; ``refusing`` makes the store unreachable (a prefetch then stays queued)."""
    return s3_forwarder


@pytest.fixture(scope="module")
def srv(tmp_path_factory, seaweedfs, relay):
    bucket = seaweedfs.make_bucket("cache-clients")
    server = cache_server(tmp_path_factory.mktemp("cache-clients"), seaweedfs, bucket, relay.port).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(srv):
    return srv.token("ops", "admin")


@pytest.fixture(scope="module")
def images(srv):
    token = srv.token("p1")
    return [upload(srv, token, MIB + n, seed=60 + n) for n in range(2)]


@pytest.fixture(scope="module")
def glance(srv, admin, tmp_path_factory):
    home = tmp_path_factory.mktemp("glance-cache")

    def run(*args, token=None, check=True):
        argv = [os.path.join(BIN, "glance"), "--os-image-url", srv.url, "--os-auth-token", token or admin, *args]
        return run_client(argv, workdir=home, check=check)

    return run


@pytest.fixture(scope="module")
def osc(srv, admin, tmp_path_factory):
    home = tmp_path_factory.mktemp("osc-cache")

    def run(*args, check=True):
        argv = [os.path.join(BIN, "openstack"), "--os-auth-type", "admin_token", "--os-token", admin,
                "--os-endpoint", f"{srv.url}/v2", *args]
        return run_client(argv, workdir=home, check=check)

    return run


def settle(srv, admin, cached=(), queued=(), timeout=20.0) -> dict:
    """Wait until the cache holds exactly ``cached`` and queues exactly ``queued``."""
    deadline = time.monotonic() + timeout
    while True:
        state = listed(srv, admin)
        now = ({e["image_id"] for e in state["cached_images"]}, set(state["queued_images"]))
        if now == (set(cached), set(queued)) or time.monotonic() > deadline:
            assert now == (set(cached), set(queued)), state
            return state
        time.sleep(0.1)


def glance_rows(glance) -> dict:
    rows = table_rows(glance("cache-list").stdout)
    assert rows[0] == ["ID", "State", "Last Accessed (UTC)", "Last Modified (UTC)", "Size", "Hits"]
    return {row[0]: row for row in rows[1:]}


def test_glance_queue_list_delete_and_clear(srv, admin, images, glance, relay):
    first, second = images
    assert glance_rows(glance) == {}
    assert glance("cache-queue", first).output.strip() == ""
    settle(srv, admin, cached=[first])
    row = glance_rows(glance)[first]
    assert row[1] == "cached" and row[4] == str(MIB) and row[5] == "0" and row[3].startswith("20")
    assert requests.get(f"{srv.url}/v2/images/{first}/file", headers={"X-Auth-Token": admin}).status_code == 200
    assert glance_rows(glance)[first][5] == "1"  # one download served from the cache

    relay.refusing = True  # the store cannot be reached: the prefetch fails and the image stays queued
    relay.cut()
    try:
        glance("cache-queue", second)
        time.sleep(1.0)
        settle(srv, admin, cached=[first], queued=[second])
    finally:
        relay.refusing = False
    assert glance_rows(glance)[second][1:] == ["queued", "N/A", "N/A", "N/A", "N/A"]
    glance("cache-clear", "--target", "queue")
    settle(srv, admin, cached=[first])
    assert glance("cache-delete", first).output.strip() == ""
    settle(srv, admin)
    assert not os.path.exists(os.path.join(srv.env["IMAGEDATA_CACHE_DIR"], first))
    glance("cache-queue", first, second)
    settle(srv, admin, cached=[first, second])
    glance("cache-clear")
    settle(srv, admin)


def test_glance_refuses_members_and_unknown_images(srv, glance):
    member = srv.token("p1")
    denied = glance("cache-list", token=member, check=False)
    assert denied.returncode == 1 and "403" in denied.output
    unknown = glance("cache-queue", "00000000-0000-4000-8000-000000000000")  # glance prints, exits 0
    assert "Unable to queue image" in unknown.output and "404" in unknown.output


def test_openstack_cached_image_list_queue_delete_clear(srv, admin, images, osc):
    first, second = images
    osc("cached", "image", "queue", first, second)
    settle(srv, admin, cached=[first, second])
    rows = {row["ID"]: row for row in json.loads(osc("cached", "image", "list", "-f", "json").stdout)}
    assert rows[first]["State"] == "cached" and rows[first]["Size"] == MIB
    assert rows[second]["Size"] == MIB + 1 and rows[second]["Last Modified (UTC)"].startswith("20")
    # openstacksdk warns "Cannot determine endpoint data" with an endpoint ending in /v2 (as
    # with Glance: no version discovery there); the command itself succeeds.
    assert "Traceback" not in osc("cached", "image", "delete", first).output
    settle(srv, admin, cached=[second])
    osc("cached", "image", "clear", "--queue")
    settle(srv, admin, cached=[second])
    osc("cached", "image", "clear", "--cache")
    settle(srv, admin)
    missing = osc("cached", "image", "queue", "00000000-0000-4000-8000-000000000000", check=False)
    assert_clean_error(missing, "Failed to queue 1 of 1 images")
