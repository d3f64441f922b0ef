"""The console with Keystone: the service exchanges a user's password for a token (never
keeping the password), the browser signs in with the four fields, and a signed link made
with a Keystone token never outlives it."""
from __future__ import annotations

import pytest
import requests

from tests.console.pages import MIB

pytestmark = pytest.mark.e2e


def session(cloud, **form):
    return requests.post(f"{cloud.server.url}/console/api/session", json=form, timeout=30)


def test_the_service_signs_a_user_in_with_keystone(cloud):
    alice = cloud.users["alice"]
    answer = session(cloud, username="alice", password=alice.password, project="alpha", domain="Default")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["project"] == "alpha" and body["expires_at"] and alice.password not in answer.text
    me = requests.get(f"{cloud.server.url}/console/api/whoami", headers={"X-Auth-Token": body["token"]}, timeout=30)
    assert me.json()["project"] == alice.project_id and "member" in me.json()["roles"]
    assert session(cloud, username="alice", password="wrong", project="alpha").status_code == 401
    assert session(cloud, username="alice", project="alpha").status_code == 400
    with open(cloud.server.log_path, errors="replace") as f:
        assert alice.password not in f.read()


def test_a_link_is_capped_at_the_keystone_token_expiry(cloud):
    token, _expires = cloud.identity.short_lived_token(cloud.users["alice"], 90)
    auth = {"X-Auth-Token": token}
    made = requests.post(f"{cloud.server.url}/v2/images", json={"name": "ks-link", "disk_format": "raw",
                                                                "container_format": "bare"}, headers=auth, timeout=30)
    image_id = made.json()["id"]
    put = requests.put(f"{cloud.server.url}/v2/images/{image_id}/file", data=b"k" * MIB,
                       headers={**auth, "Content-Type": "application/octet-stream"}, timeout=30)
    assert put.status_code == 204
    link = requests.post(f"{cloud.server.url}/v2/images/{image_id}/file/links", json={"expires_in": 3600},
                         headers=auth, timeout=30)
    assert link.status_code == 201, link.text
    assert 0 < link.json()["expires_in"] <= 90
    assert requests.get(link.json()["url"], timeout=30).content == b"k" * MIB


def test_signing_in_from_the_browser(cloud, browser, shots):
    page = browser.new_context().new_page()
    page.goto(f"{cloud.server.url}/console/")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(cloud.users["bob"].password)
    page.get_by_label("Project").fill("beta")
    shots.take(page, "keystone-sign-in")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Images").wait_for()
    assert page.get_by_label("Password").count() == 0
    stored = page.evaluate("JSON.stringify(Object.entries(sessionStorage))")
    assert cloud.users["bob"].password not in stored and page.context.cookies() == []
    page.context.close()
