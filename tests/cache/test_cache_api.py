"""The cache API's answers that need no remote store (the clients drive the rest end to end,
tests/clients/test_cache_clients.py): versions, policy, cache off, bad requests."""
from __future__ import annotations

import uuid

import pytest

from tests.helpers import OCTET

DB_BACKENDS = ("sqlite",)


@pytest.fixture
def cached(env, tmp_path, request):
    """The test client of an app with a cache in the test's folder."""
    env.update(IMAGEDATA_CACHE_DIR=str(tmp_path / "cache"), IMAGEDATA_CACHE_MAX_BYTES="64M")
    return request.getfixturevalue("client")



@pytest.fixture
def admin(make_token):
    return {"X-Auth-Token": make_token("ops", ("admin",))}


def version_ids(client) -> list[str]:
    return [v["id"] for v in client.get("/versions").get_json()["versions"]]


def test_versions_list_the_cache_api_only_when_the_cache_is_on(client):
    ids = version_ids(client)
    assert "v2.14" not in ids and "v2.18" not in ids and ids[:2] == ["v2.15", "v2.13"]
    assert client.get("/v2.14/images").status_code == 300  # not a version here


def test_glance_s_versions_with_a_cache(cached, auth):
    client = cached
    body = client.get("/versions").get_json()["versions"]
    # (v2.17, the locations API, is not here, with or without a cache)
    assert [(v["id"], v["status"]) for v in body[:5]] == [
        ("v2.18", "CURRENT"), ("v2.16", "SUPPORTED"), ("v2.15", "SUPPORTED"), ("v2.14", "SUPPORTED"),
        ("v2.13", "SUPPORTED")]
    for prefix in ("v2.14", "v2.16", "v2.18"):
        assert client.get(f"/{prefix}/images", headers=auth).status_code == 200


@pytest.mark.parametrize("method, path", [("GET", "/v2/cache"), ("DELETE", "/v2/cache"),
                                          ("PUT", f"/v2/cache/{uuid.uuid4()}"),
                                          ("DELETE", f"/v2/cache/{uuid.uuid4()}"), ("POST", "/v2/cache/clean"),
                                          ("POST", "/v2/cache/prune")])
def test_cache_off_members_are_refused_and_admins_told(client, auth, admin, method, path):
    # Glance: the policy first (403), then "not supported at this site" (404).
    assert client.open(path, method=method, headers=auth).status_code == 403
    refused = client.open(path, method=method, headers={**admin, "Accept": "application/json"})
    assert refused.status_code == 404 and "not supported at this site" in refused.get_data(as_text=True)


def test_answers_without_a_remote_store(cached, auth, admin, new_image):
    client = cached
    assert client.get("/v2/cache", headers=auth).status_code == 403
    assert client.get("/v2/cache", headers=admin).get_json() == {"cached_images": [], "queued_images": []}
    unknown = str(uuid.uuid4())
    assert client.put(f"/v2/cache/{unknown}", headers=admin).status_code == 404
    assert client.delete(f"/v2/cache/{unknown}", headers=admin).status_code == 404
    assert client.delete("/v2/cache/not-an-id", headers=admin).status_code == 404
    queued = new_image()
    refused = client.put(f"/v2/cache/{queued['id']}", headers=admin)
    assert refused.status_code == 400 and "status active" in refused.get_data(as_text=True)
    local = new_image()
    assert client.put(f"/v2/images/{local['id']}/file", data=b"x" * 100,
                      headers={**auth, "Content-Type": OCTET}).status_code == 204
    refused = client.put(f"/v2/cache/{local['id']}", headers=admin)
    assert refused.status_code == 400 and "local store (local)" in refused.get_data(as_text=True)
    assert client.delete(f"/v2/cache/{local['id']}", headers=admin).status_code == 204  # known, not cached
    for target in ("", "cache", "queue", "both", "QUEUE"):
        assert client.delete("/v2/cache", headers={**admin, "x-image-cache-clear-target": target}).status_code == 204
    bad = client.delete("/v2/cache", headers={**admin, "x-image-cache-clear-target": "all"})
    assert bad.status_code == 400 and "'cache', 'queue'" in bad.get_data(as_text=True)
    assert client.post("/v2/cache/clean", headers=admin).status_code == 200
    assert client.post("/v2/cache/prune", headers=admin).get_json() == {"total_files_pruned": 0,
                                                                         "total_bytes_pruned": 0}
    assert client.get(f"/v2/cache/nodes/{local['id']}", headers=admin).status_code == 409
    health = client.get("/v2/info/health", headers=admin).get_json()["cache"]
    assert health["used_bytes"] == 0 and health["max_bytes"] == 64 << 20 and health["problem"] is None


def test_images_in_file_stores_are_never_cached(cached, auth, new_image, app):
    client = cached
    image = new_image()
    data = b"local bytes" * 1000
    assert client.put(f"/v2/images/{image['id']}/file", data=data,
                      headers={**auth, "Content-Type": OCTET}).status_code == 204
    assert client.get(f"/v2/images/{image['id']}/file", headers=auth).data == data
    assert app.extensions["imagedata"].cache.usage().used_bytes == 0
