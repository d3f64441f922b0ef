"""IMAGEDATA_AUTH=keystone over HTTP: real Keystone tokens, roles, projects, service tokens."""
from __future__ import annotations

import random
import time

import pytest
import requests

from tests.keystone.identity import IdentityError

pytestmark = pytest.mark.e2e

OCTET = {"Content-Type": "application/octet-stream"}
DATA = random.Random(12).randbytes(300_000)


def call(cloud, method, path, token=None, service_token=None, **kwargs):
    """One request to imagedata with the given tokens."""
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["X-Auth-Token"] = token
    if service_token is not None:
        headers["X-Service-Token"] = service_token
    return requests.request(method, f"{cloud.server.url}{path}", headers=headers, timeout=30, **kwargs)


def new_image(cloud, token, **fields) -> str:
    body = {"name": "ks-image", "disk_format": "raw", "container_format": "bare", **fields}
    response = call(cloud, "POST", "/v2/images", token, json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def upload(cloud, token, image_id, data=DATA):
    return call(cloud, "PUT", f"/v2/images/{image_id}/file", token, data=data, headers=OCTET)


@pytest.fixture(scope="module")
def tokens(cloud):
    """One token per test user, issued once (imagedata caches them after the first use).

    ``expiring`` is alice's too, but it expires a few seconds later, while the other tests run.
    """
    found = {name: cloud.token(name) for name in ("alice", "carol", "bob", "dave", "admin", "nova")}
    found["expiring"], found["expiring_at"] = cloud.identity.short_lived_token(cloud.users["alice"], 3)
    return found


@pytest.fixture(scope="module")
def alpha_image(cloud, tokens):
    """A private image of project alpha, with data, uploaded by its member."""
    image_id = new_image(cloud, tokens["alice"], name="alpha-private", visibility="private")
    assert upload(cloud, tokens["alice"], image_id).status_code == 204
    return image_id


def test_versions_need_no_token(cloud):
    assert call(cloud, "GET", "/versions").status_code == 200
    assert call(cloud, "GET", "/").status_code == 300
    assert call(cloud, "GET", "/healthcheck").status_code == 200


@pytest.mark.parametrize("token", [None, "", "garbage", "notused", "gAAAAABfake" + "x" * 180],
                         ids=["none", "empty", "garbage", "notused", "fernet-shaped"])
def test_bad_tokens_get_401_with_keystone_uri(cloud, token):
    response = call(cloud, "GET", "/v2/images", token)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == f'Keystone uri="{cloud.keystone.auth_url}"'
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "requires authentication" in response.text
    # The server's log says why (never with the token itself).
    why = "no X-Auth-Token header" if not token else "Keystone did not accept the token (invalid, expired or revoked)"
    deadline = time.monotonic() + 5
    while f"401 on GET /v2/images: {why}" not in cloud.server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"401 on GET /v2/images: {why}" in cloud.server.log()
    if token:
        assert token not in cloud.server.log()


def test_401_is_json_for_clients_that_ask(cloud):
    response = call(cloud, "GET", "/v2/images", "garbage", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json()["code"] == "401 Unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_identity_headers_sent_by_a_client_are_ignored(cloud, tokens, alpha_image):
    spoof = {"X-Identity-Status": "Confirmed", "X-Roles": "admin", "X-Project-Id": "alpha",
             "X-User-Id": "root", "X-Service-Identity-Status": "Confirmed"}
    assert call(cloud, "GET", "/v2/images", "garbage", headers=spoof).status_code == 401
    # bob's real token with forged admin headers is still bob: alpha's private image is not there.
    response = call(cloud, "GET", f"/v2/images/{alpha_image}", tokens["bob"], headers=spoof)
    assert response.status_code == 404


def test_member_owns_what_it_creates_and_round_trips_data(cloud, tokens, alpha_image):
    alice = cloud.users["alice"]
    body = call(cloud, "GET", f"/v2/images/{alpha_image}", tokens["alice"]).json()
    assert body["owner"] == alice.project_id and body["status"] == "active"
    response = call(cloud, "GET", f"/v2/images/{alpha_image}/file", tokens["alice"])
    assert response.status_code == 200 and response.content == DATA
    usage = call(cloud, "GET", "/v2/info/usage", tokens["alice"]).json()
    assert usage["usage"]["image_size_total"]["usage"] >= len(DATA)


def test_reader_may_look_but_not_create_upload_or_download(cloud, tokens, alpha_image):
    assert call(cloud, "GET", f"/v2/images/{alpha_image}", tokens["carol"]).status_code == 200
    assert alpha_image in [i["id"] for i in call(cloud, "GET", "/v2/images", tokens["carol"]).json()["images"]]
    assert call(cloud, "POST", "/v2/images", tokens["carol"],
                json={"name": "x", "disk_format": "raw", "container_format": "bare"}).status_code == 403
    queued = new_image(cloud, tokens["alice"], name="alpha-queued")
    response = upload(cloud, tokens["carol"], queued)
    assert response.status_code == 403, response.text
    assert call(cloud, "GET", f"/v2/images/{queued}", tokens["alice"]).json()["status"] == "queued"
    assert call(cloud, "GET", f"/v2/images/{alpha_image}/file", tokens["carol"]).status_code == 403


def test_another_project_gets_404_until_the_image_is_shared(cloud, tokens, alpha_image):
    beta = cloud.users["bob"].project_id
    for method, path in (("GET", ""), ("GET", "/file"), ("DELETE", "")):
        assert call(cloud, method, f"/v2/images/{alpha_image}{path}", tokens["bob"]).status_code == 404
    shared = new_image(cloud, tokens["alice"], name="alpha-shared", visibility="shared")
    assert upload(cloud, tokens["alice"], shared).status_code == 204
    assert call(cloud, "GET", f"/v2/images/{shared}", tokens["bob"]).status_code == 404
    # Member ids are Keystone project ids.
    response = call(cloud, "POST", f"/v2/images/{shared}/members", tokens["alice"], json={"member": beta})
    assert response.status_code == 200, response.text
    assert call(cloud, "GET", f"/v2/images/{shared}", tokens["bob"]).status_code == 200
    assert shared not in [i["id"] for i in call(cloud, "GET", "/v2/images", tokens["bob"]).json()["images"]]
    # Only the member project answers; alice cannot accept for beta.
    accept = {"status": "accepted"}
    assert call(cloud, "PUT", f"/v2/images/{shared}/members/{beta}", tokens["alice"], json=accept).status_code == 403
    assert call(cloud, "PUT", f"/v2/images/{shared}/members/{beta}", tokens["bob"], json=accept).status_code == 200
    assert shared in [i["id"] for i in call(cloud, "GET", "/v2/images", tokens["bob"]).json()["images"]]
    response = call(cloud, "GET", f"/v2/images/{shared}/file", tokens["bob"])
    assert response.status_code == 200 and response.content == DATA
    # beta's reader sees it, but readers never download.
    assert call(cloud, "GET", f"/v2/images/{shared}/file", tokens["dave"]).status_code == 403
    # The private one stays invisible to beta.
    assert call(cloud, "GET", f"/v2/images/{alpha_image}", tokens["bob"]).status_code == 404


def test_admin_role_is_admin(cloud, tokens, alpha_image):
    assert call(cloud, "GET", f"/v2/images/{alpha_image}", tokens["admin"]).status_code == 200
    assert call(cloud, "GET", "/v2/info/stores/detail", tokens["admin"]).status_code == 200
    assert call(cloud, "GET", "/v2/info/stores/detail", tokens["alice"]).status_code == 403
    system = cloud.identity.login("admin", cloud.keystone.admin_password, system=True)
    assert call(cloud, "GET", f"/v2/images/{alpha_image}", system).status_code == 200


def test_nova_style_download_with_a_service_token(cloud, tokens, alpha_image):
    """Nova sends the user's token and its own service token (service role, service project)."""
    response = call(cloud, "GET", f"/v2/images/{alpha_image}/file", tokens["alice"], tokens["nova"],
                    headers={"User-Agent": "python-glanceclient"})
    assert response.status_code == 200 and response.content == DATA
    # The service token grants nothing: the caller is still the user (bob: 404).
    assert call(cloud, "GET", f"/v2/images/{alpha_image}/file", tokens["bob"], tokens["nova"]).status_code == 404


def test_an_expired_user_token_is_accepted_with_a_service_token(cloud, tokens, alpha_image):
    """Nova's long operations: the user's token expired meanwhile, its service token vouches for it
    (auth_token's allow_expired, only for service tokens with the service role)."""
    time.sleep(max(0.0, tokens["expiring_at"] + 1 - time.time()))
    assert call(cloud, "GET", f"/v2/images/{alpha_image}", tokens["expiring"]).status_code == 401
    response = call(cloud, "GET", f"/v2/images/{alpha_image}/file", tokens["expiring"], tokens["nova"])
    assert response.status_code == 200 and response.content == DATA
    assert call(cloud, "GET", f"/v2/images/{alpha_image}", tokens["expiring"], tokens["bob"]).status_code == 401


@pytest.mark.parametrize("service", ["garbage", "bob"])
def test_a_bad_service_token_is_401(cloud, tokens, alpha_image, service):
    """A service token must be valid and carry the service role (service_token_roles_required)."""
    response = call(cloud, "GET", f"/v2/images/{alpha_image}", tokens["alice"], tokens.get(service, service))
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_a_token_of_a_deleted_user_is_refused(cloud):
    user = cloud.identity.create_user("eve", "eve-password-1", "beta", cloud.users["bob"].project_id, ["member"])
    token = cloud.identity.token_for(user)
    cloud.identity.call("DELETE", f"/users/{user.user_id}")
    assert call(cloud, "GET", "/v2/images", token).status_code == 401
    with pytest.raises(IdentityError):
        cloud.identity.token_for(user)
