"""Token lifetime in imagedata's cache: revocation, and Keystone hung or stopped.

imagedata asks Keystone about a token once per cache lifetime (``token_cache_time``, here
CACHE_SECONDS). A revoked token therefore works until its cache entry expires, then gets 401;
while Keystone cannot answer, cached tokens keep working and new ones get 503, after at most
the bounded wait (two tries of ``http_connect_timeout`` = 3 s, imagedata's defaults).
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.keystone.conftest import CACHE_SECONDS

pytestmark = pytest.mark.e2e

# Two tries of 3 s and keystoneauth's 0.5 s back-off, plus slack for a loaded machine.
HUNG_KEYSTONE_BOUND = 12.0


def list_images(cloud, token, **headers):
    return requests.get(f"{cloud.server.url}/v2/images", headers={"X-Auth-Token": token, **headers}, timeout=60)


def test_a_revoked_token_gets_401_once_its_cache_entry_expires(cloud):
    token = cloud.token("alice")
    assert list_images(cloud, token).status_code == 200  # validated, now cached
    cached_at = time.monotonic()
    cloud.identity.revoke(token)
    status = list_images(cloud, token).status_code
    if time.monotonic() - cached_at < CACHE_SECONDS - 1:  # still inside the cache lifetime
        assert status == 200, "a cached token is not checked with Keystone again before it expires"
    while True:
        response = list_images(cloud, token)
        if response.status_code != 200 or time.monotonic() > cached_at + CACHE_SECONDS + 5:
            break
        time.sleep(0.25)
    assert response.status_code == 401, f"revoked token still accepted {time.monotonic() - cached_at:.1f}s later"
    assert time.monotonic() - cached_at <= CACHE_SECONDS + 5
    assert response.headers["WWW-Authenticate"] == f'Keystone uri="{cloud.keystone.auth_url}"'


def test_keystone_hung_or_stopped_cached_tokens_work_new_ones_get_503(cloud):
    keystone = cloud.keystone
    fresh = cloud.token("bob")  # valid, but imagedata has never seen it
    cached = cloud.token("alice")
    assert list_images(cloud, cached).status_code == 200

    keystone.pause()  # accepts connections, never answers
    try:
        assert list_images(cloud, cached).status_code == 200
        started = time.monotonic()
        response = list_images(cloud, fresh, Accept="application/json")
        waited = time.monotonic() - started
    finally:
        keystone.resume()
    assert response.status_code == 503, response.text
    assert "Keystone" in response.json()["message"]
    assert waited < HUNG_KEYSTONE_BOUND, f"a hung Keystone held the request {waited:.1f}s"

    cached = cloud.token("alice")
    assert list_images(cloud, cached).status_code == 200
    keystone.stop()  # connection refused
    try:
        assert list_images(cloud, cached).status_code == 200
        started = time.monotonic()
        response = list_images(cloud, fresh)
        assert response.status_code == 503, response.text
        assert time.monotonic() - started < HUNG_KEYSTONE_BOUND
        assert response.headers["Content-Type"].startswith("text/plain")
        assert "could not be reached" in response.text
        assert "WWW-Authenticate" not in response.headers
    finally:
        keystone.start()
    # Keystone is back: the same token is accepted now.
    assert list_images(cloud, fresh).status_code == 200
