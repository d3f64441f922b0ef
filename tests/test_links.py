"""Signed download links: made with a token, used without one; expiry, tampering, delete,
deactivation, revocation, and the same bytes and headers as GET /file."""
from __future__ import annotations

import base64
import json
import os
import time

import pytest

from imagedata.db import database
from imagedata.models import Token
from imagedata.service import tokens
from imagedata.service.tokens import revoke_token

SECRET = "links-test-secret-0123456789-abcdefghijkl"
DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture(autouse=True)
def link_secret(env):
    env.setdefault("IMAGEDATA_LINK_SECRET", SECRET)


@pytest.fixture
def image(new_image, upload):
    made = new_image()
    assert upload(made["id"], DATA).status_code == 204
    return made


def make_link(client, auth, image_id, **body):
    response = client.post(f"/v2/images/{image_id}/file/links", json=body, headers=auth)
    assert response.status_code == 201, response.data
    return response.get_json()


def path_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def test_a_link_downloads_without_a_token_with_the_headers_of_get_file(client, auth, image):
    made = make_link(client, auth, image["id"])
    assert made["expires_in"] == 900 and made["image_id"] == image["id"]
    link = path_of(made["url"])
    for headers in ({}, {"Range": "bytes=100-199"}, {"Range": "bytes=-10"}):
        by_link = client.get(link, headers=headers)
        direct = client.get(f"/v2/images/{image['id']}/file", headers={**auth, **headers})
        assert (by_link.status_code, by_link.data) == (direct.status_code, direct.data)
        same = {k: v for k, v in by_link.headers.items() if k != "x-openstack-request-id"}
        assert same == {k: v for k, v in direct.headers.items() if k != "x-openstack-request-id"}
    assert client.get(link).data == DATA
    head = client.head(link)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(DATA)) and not head.data
    etag = client.get(link).headers["ETag"]
    assert client.get(link, headers={"If-None-Match": etag}).status_code == 304


def test_tampering_with_any_part_is_refused(client, auth, image, new_image, upload):
    link = path_of(make_link(client, auth, image["id"])["url"])
    prefix, token = link.rsplit("/", 1)
    payload, signature = token.split(".")
    other = new_image()
    upload(other["id"], b"other data")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    longer = dict(decoded, e=decoded["e"] + 86400)
    forged = base64.urlsafe_b64encode(json.dumps(longer).encode()).rstrip(b"=").decode()
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for bad in (f"{prefix}/{forged}.{signature}", f"{prefix}/{payload}.{flipped}", f"{prefix}/{payload}",
                f"{prefix}/{payload}.", f"{prefix}/.{signature}", f"{prefix}/{payload}.{signature}x",
                link.replace(image["id"], other["id"]), f"{prefix}/%c3%a9.%ff"):
        response = client.get(bad)
        assert response.status_code == 403, (bad, response.data)
        assert b"not valid" in response.data
    assert client.get(link).status_code == 200


def test_another_secret_refuses_the_link(client, auth, image, app):
    link = path_of(make_link(client, auth, image["id"])["url"])
    settings = app.extensions["imagedata"].settings
    app.extensions["imagedata"].settings = settings.__class__(**{**settings.__dict__, "link_secret": "x" * 40})
    try:
        assert client.get(link).status_code == 403
    finally:
        app.extensions["imagedata"].settings = settings


def test_a_link_expires(client, auth, image):
    link = path_of(make_link(client, auth, image["id"], expires_in=1)["url"])
    assert client.get(link).status_code == 200
    time.sleep(2.05)
    response = client.get(link)
    assert response.status_code == 403 and b"expired" in response.data


def test_a_link_stops_while_deactivated_and_for_good_when_deleted(client, auth, admin_token, image):
    admin = {"X-Auth-Token": admin_token}
    links = [path_of(make_link(client, auth, image["id"])["url"]), path_of(make_link(client, admin, image["id"])["url"])]
    assert client.post(f"/v2/images/{image['id']}/actions/deactivate", headers=admin).status_code == 204
    for link in links:  # an admin's link too: a link never serves a deactivated image
        response = client.get(link)
        assert response.status_code == 403 and b"deactivated" in response.data
    assert client.post(f"/v2/images/{image['id']}/actions/reactivate", headers=admin).status_code == 204
    assert all(client.get(link).status_code == 200 for link in links)
    assert client.delete(f"/v2/images/{image['id']}", headers=auth).status_code == 204
    assert all(client.get(link).status_code == 404 for link in links)


def test_revoking_the_token_that_made_it_stops_the_link(client, make_token, new_image, upload):
    secret = make_token("p1")
    auth = {"X-Auth-Token": secret}
    made = new_image(headers=auth)
    upload(made["id"], DATA, headers=auth)
    link = path_of(make_link(client, auth, made["id"])["url"])
    other_link = path_of(make_link(client, {"X-Auth-Token": make_token("p1")}, made["id"])["url"])
    with database.connection_context():
        row = Token.get(Token.token_hash == tokens.hash_token(secret))
        assert revoke_token(row.token_id)
    response = client.get(link)
    assert response.status_code == 403 and b"revoked" in response.data
    assert client.get(other_link).status_code == 200  # a link of another token is untouched


def test_a_link_never_outlives_its_token(client, make_token, new_image, upload):
    secret = make_token("p1", expires_in=60)
    auth = {"X-Auth-Token": secret}
    made = new_image(headers=auth)
    upload(made["id"], DATA, headers=auth)
    link = make_link(client, auth, made["id"], expires_in=3600)
    assert 55 <= link["expires_in"] <= 60


@pytest.mark.parametrize("body, status", [
    ({"expires_in": 0}, 400), ({"expires_in": 86401}, 400), ({"expires_in": "60"}, 400),
    ({"expires_in": True}, 400), ({"expires_in": 1.5}, 400), ({"other": 1}, 400), ([], 400),
    ({"expires_in": 86400}, 201), ({}, 201),
])
def test_expires_in_is_checked(client, auth, image, body, status):
    response = client.post(f"/v2/images/{image['id']}/file/links", json=body, headers=auth)
    assert response.status_code == status, response.data


def test_who_may_make_a_link(client, auth, make_token, new_image, image):
    assert client.post(f"/v2/images/{image['id']}/file/links").status_code == 401
    stranger = {"X-Auth-Token": make_token("p2")}
    assert client.post(f"/v2/images/{image['id']}/file/links", headers=stranger).status_code == 404
    queued = new_image()
    response = client.post(f"/v2/images/{queued['id']}/file/links", headers=auth)
    assert response.status_code == 409 and b"active" in response.data
    assert client.post("/v2/images/not-an-id/file/links", headers=auth).status_code == 404
    response = client.post(f"/v2/images/{image['id']}/file/links", data=b"{", headers=auth,
                           content_type="application/json")
    assert response.status_code == 400


def test_without_a_secret_one_host_keeps_a_random_key(tmp_path, env, db_backend):
    """SQLite (one host): a key made once in the data folder, mode 0600, shared by every worker.
    A shared database (PostgreSQL: several hosts) needs IMAGEDATA_LINK_SECRET."""
    from imagedata.config import load_settings
    from imagedata.errors import ServiceUnavailable
    from imagedata.service.links import link_key

    env.pop("IMAGEDATA_LINK_SECRET")
    settings = load_settings(env)
    if db_backend == "postgresql":
        settings = settings.__class__(**{**settings.__dict__, "database_url": "postgresql://h/db"})
        with pytest.raises(ServiceUnavailable, match="IMAGEDATA_LINK_SECRET"):
            link_key(settings)
        return
    os.makedirs(settings.data_dir, exist_ok=True)
    first = link_key(settings)
    path = os.path.join(settings.data_dir, "link-secret")
    assert first == link_key(settings) and len(first) >= 32
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_the_cli_makes_a_link(runner, client, image):
    result = runner.invoke(args=["link", "create", image["id"], "--expires-in", "120",
                                 "--endpoint", "http://images.example:9292"])
    assert result.exit_code == 0, result.output
    url = result.stdout.strip().splitlines()[-1]
    assert url.startswith(f"http://images.example:9292/v2/images/{image['id']}/file/links/")
    assert client.get(path_of(url)).data == DATA
    result = runner.invoke(args=["link", "create", image["id"], "--expires-in", "0"])
    assert result.exit_code != 0 and "expires_in" in result.output
