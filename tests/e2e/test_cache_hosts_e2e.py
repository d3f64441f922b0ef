"""Two hosts, one database and one bucket, each with its own cache: the database decides every
request, so an image deleted or deactivated through either host is never served from any cache."""
from __future__ import annotations

import os
import time

import pytest
import requests

from tests.e2e.cachekit import MIB, cache_dir, cache_server, fetch, listed, upload, wait_cached

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, seaweedfs):
    bucket = seaweedfs.make_bucket("cache-hosts")
    root = tmp_path_factory.mktemp("cache-hosts")
    shared = {"IMAGEDATA_DATABASE_URL": f"sqlite:///{root}/shared.db"}
    started = []
    for name in ("a", "b"):
        started.append(cache_server(root / name, seaweedfs, bucket, seaweedfs.s3_port, **shared).start())
    yield started
    for server in started:
        server.stop()


def cached_on_both(hosts, token, image_id, size, seed):
    for host in hosts:
        status, _, data = fetch(host, token, image_id)
        assert status == 200 and len(data) == size
        wait_cached(host, image_id)


def gone_from(host, admin, image_id, timeout=10.0) -> bool:
    """The host's cache forgets the image: listing it checks the database first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if image_id not in {e["image_id"] for e in listed(host, admin)["cached_images"]} and \
                not os.path.exists(os.path.join(cache_dir(host), image_id)):
            return True
        time.sleep(0.1)
    return False


def test_an_image_deleted_through_one_host_is_never_served_again_by_either(hosts):
    a, b = hosts
    token, admin = a.token("p1"), a.token("ops", "admin")
    image_id = upload(a, token, 3 * MIB, seed=41)
    cached_on_both(hosts, token, image_id, 3 * MIB, 41)
    assert requests.delete(f"{a.url}/v2/images/{image_id}", headers={"X-Auth-Token": token}, timeout=10).status_code \
        == 204
    for host in hosts:
        for caller in (token, admin):
            assert fetch(host, caller, image_id)[0] == 404
            assert fetch(host, caller, image_id, Range="bytes=0-9")[0] == 404
    assert gone_from(a, admin, image_id) and gone_from(b, admin, image_id)


def test_a_deactivated_image_is_not_served_from_the_cache_and_leaves_it(hosts):
    a, b = hosts
    token, admin = a.token("p1"), a.token("ops", "admin")
    image_id = upload(a, token, 2 * MIB, seed=42)
    cached_on_both(hosts, token, image_id, 2 * MIB, 42)
    deactivate = requests.post(f"{b.url}/v2/images/{image_id}/actions/deactivate",
                               headers={"X-Auth-Token": admin}, timeout=10)
    assert deactivate.status_code == 204
    for host in hosts:
        assert fetch(host, token, image_id)[0] == 403
        status, _, data = fetch(host, admin, image_id)  # admins still read it, from the store
        assert status == 200 and len(data) == 2 * MIB
        assert not os.path.exists(os.path.join(cache_dir(host), image_id))
        assert gone_from(host, admin, image_id)
    reactivate = requests.post(f"{a.url}/v2/images/{image_id}/actions/reactivate",
                               headers={"X-Auth-Token": admin}, timeout=10)
    assert reactivate.status_code == 204
    assert fetch(a, token, image_id)[0] == 200
    wait_cached(a, image_id)
