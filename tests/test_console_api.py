"""The console's files and calls: static files with a strict policy, who-am-I, admin pages' data."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import with_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_console_page_and_its_modules_are_served_with_a_strict_policy(client):
    assert client.get("/console").status_code == 308
    page = client.get("/console/")
    assert page.status_code == 200 and b'<script type="module" src="js/main.js">' in page.data
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer" and "Set-Cookie" not in page.headers
    script = client.get("/console/js/uploader.js")
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert b"file.slice" in script.data
    for missing in ("/console/nothing.js", "/console/../app.py", "/console/api/nothing"):
        assert client.get(missing).status_code == 404


def test_config_needs_no_token_and_whoami_does(client, auth):
    config = client.get("/console/api/config").get_json()
    assert config["auth"] == "token" and config["link_max_seconds"] == 86400
    assert config["import_methods"] == ["glance-direct", "web-download", "copy-image"]  # the forms offered
    assert client.get("/console/api/whoami").status_code == 401
    me = client.get("/console/api/whoami", headers=auth).get_json()
    assert me == {"user": "user-p1", "project": "p1", "roles": ["member", "reader"], "admin": False}


def test_the_keystone_sign_in_is_for_keystone_mode_only(client):
    response = client.post("/console/api/session", json={"username": "u", "password": "p", "project": "x"})
    assert response.status_code == 404


def test_quotas_and_usage_per_project_for_admins(client, auth, admin_token, new_image, upload):
    admin = {"X-Auth-Token": admin_token}
    upload(new_image()["id"], b"x" * 100)
    assert client.get("/console/api/projects", headers=auth).status_code == 403
    response = client.put("/console/api/projects/p1/quota", json={"image_size_total": 1000}, headers=admin)
    assert response.status_code == 200
    assert response.get_json()["usage"]["image_size_total"] == {"limit": 1000, "usage": 100}
    projects = {p["project"]: p["usage"] for p in client.get("/console/api/projects", headers=admin).get_json()["projects"]}
    assert projects["p1"]["image_count_total"] == {"limit": -1, "usage": 1}
    for bad in ({}, {"image_size_total": -1}, {"image_size_total": "1"}, {"other": 1}, {"image_count_total": 2**31}):
        assert client.put("/console/api/projects/p1/quota", json=bad, headers=admin).status_code == 400


def test_tokens_for_admins(client, auth, admin_token):
    admin = {"X-Auth-Token": admin_token}
    assert client.get("/console/api/tokens", headers=auth).status_code == 403
    made = client.post("/console/api/tokens", json={"project": "p7", "roles": ["member"], "expires_in": 600},
                       headers=admin)
    assert made.status_code == 201
    body = made.get_json()
    assert body["project"] == "p7" and body["token"].startswith("idt_") and body["expires_at"]
    assert client.get("/console/api/whoami", headers={"X-Auth-Token": body["token"]}).status_code == 200
    listed = client.get("/console/api/tokens", headers=admin).get_json()["tokens"]
    assert body["id"] in [t["id"] for t in listed] and all("token" not in t for t in listed)
    assert client.delete(f"/console/api/tokens/{body['id']}", headers=admin).status_code == 204
    assert client.delete("/console/api/tokens/nope", headers=admin).status_code == 404
    for bad in ({}, {"project": ""}, {"project": "p", "roles": 3}, {"project": "p", "expires_in": 0}):
        assert client.post("/console/api/tokens", json=bad, headers=admin).status_code == 400


@with_env(IMAGEDATA_AUTH="noauth")
def test_tokens_are_not_managed_here_in_other_modes(client):
    assert client.get("/console/api/tokens").status_code == 404
    assert client.get("/console/api/whoami").get_json()["admin"] is True


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_the_package_build_ships_the_console(tmp_path, db_backend):
    """setuptools' build_py (what a wheel is made of) copies the console's files."""
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ["index.html", "console.css"] + [f"js/{n}" for n in os.listdir(os.path.join(REPO, "imagedata/console/js"))]:
        assert (tmp_path / "imagedata" / "console" / name).is_file(), name
