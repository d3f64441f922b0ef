"""The deploy/ files as shipped: systemd units checked by systemd-analyze, and the nginx site
with the example environment file in front of a real gunicorn (only ports and paths replaced)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest
import requests

from testkit.nginx import SiteProxy, nginx_binary
from tests.e2e import streams
from tests.e2e.server import REPO
from tests.helpers import skip_or_fail
from tests.ops.helpers import create, put, request_id

pytestmark = pytest.mark.e2e
DEPLOY = os.path.join(REPO, "deploy")
UNITS = sorted(os.listdir(os.path.join(DEPLOY, "systemd")))
MIB = streams.MIB


def render_unit(text: str, root) -> str:
    """A unit with this checkout, its virtualenv and temp folders in place of the production paths."""
    for old, new in (("/opt/imagedata/.venv/bin", os.path.dirname(sys.executable)), ("/opt/imagedata", REPO),
                     ("/etc/imagedata/imagedata.env", os.path.join(DEPLOY, "imagedata.env")),
                     ("/var/lib/imagedata", str(root / "var")), ("/srv/imagedata/stores", str(root / "stores"))):
        text = text.replace(old, new)
    return text


def _analyze(root, names):
    binary = shutil.which("systemd-analyze")
    if binary is None:
        skip_or_fail("systemd-analyze is missing (Debian package systemd; .ci/run installs it)")
    return subprocess.run([binary, "verify", *names], cwd=root, capture_output=True, text=True, timeout=60)


def test_systemd_units_pass_systemd_analyze(tmp_path):
    assert {"imagedata.service", "imagedata-maintenance.service", "imagedata-maintenance.timer",
            "imagedata-verify.service", "imagedata-verify.timer"} <= set(UNITS)
    for sub in ("var", "stores"):
        (tmp_path / sub).mkdir()
    for name in UNITS:
        with open(os.path.join(DEPLOY, "systemd", name)) as f:
            (tmp_path / name).write_text(render_unit(f.read(), tmp_path))
    done = _analyze(tmp_path, UNITS)
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
    service = (tmp_path / "imagedata.service").read_text()
    for setting in ("Restart=on-failure", "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
                    "KillMode=mixed", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert setting in service
    # The check really reads the units: a broken one fails.
    (tmp_path / "imagedata.service").write_text(service.replace(sys.executable.rsplit("/", 1)[0], "/nonexistent"))
    assert _analyze(tmp_path, ["imagedata.service"]).returncode != 0


def example_env(root, port: int, public: str) -> dict:
    """deploy/imagedata.env with this test's folders, port and public URL."""
    values = {}
    with open(os.path.join(DEPLOY, "imagedata.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                values[name] = value
    assert values["IMAGEDATA_STORES"].startswith("local=file:///srv/imagedata/stores/local")
    values.update(IMAGEDATA_DATA_DIR=f"{root}/data", IMAGEDATA_BIND=f"127.0.0.1:{port}",
                  IMAGEDATA_PUBLIC_ENDPOINT=public,
                  IMAGEDATA_STORES=values["IMAGEDATA_STORES"].replace("/srv/imagedata/stores", f"{root}/stores"))
    return values


@pytest.fixture(scope="module", params=["x-accel", "proxied"])
def stack(request, tmp_path_factory, start_module_server):
    """gunicorn with the example settings behind nginx with the deploy site: (server, nginx)."""
    if nginx_binary() is None:
        skip_or_fail("nginx is not installed (CI installs it)")
    srv = start_module_server(f"deploy-{request.param}", start=False)
    nginx = SiteProxy(tmp_path_factory.mktemp(f"deploy-{request.param}-nginx"), srv.port,
                      os.path.join(srv.root, "stores"))
    srv.env.update(example_env(srv.root, srv.port, nginx.url))
    if request.param == "proxied":
        srv.env.pop("IMAGEDATA_ACCEL_REDIRECT")
    srv.start()
    nginx.start()
    yield srv, nginx
    nginx.stop()
    srv.stop()  # the other mode's pair takes its place


def _access_line(srv, rid: str) -> str:
    lines = [line for line in srv.log().splitlines() if rid in line and '"imagedata.access"' in line]
    assert len(lines) == 1, lines
    return lines[0]


def test_uploads_and_downloads_through_nginx(stack):
    srv, nginx = stack
    token = srv.token("p1")
    size = 5 * MIB + 123
    sized = create(nginx.url, token)
    assert put(nginx.url, token, sized, b"".join(streams.chunks(11, size))).status_code == 204
    chunked = create(nginx.url, token)
    response = put(nginx.url, token, chunked, streams.chunks(12, size, piece=300_000))
    assert response.status_code == 204, response.text
    accel = "IMAGEDATA_ACCEL_REDIRECT" in srv.env
    for image_id, seed in ((sized, 11), (chunked, 12)):
        rid = request_id()
        full = requests.get(f"{nginx.url}/v2/images/{image_id}/file", timeout=60,
                            headers={"X-Auth-Token": token, "X-Openstack-Request-ID": rid})
        assert full.status_code == 200
        assert hashlib.sha512(full.content).hexdigest() == streams.digest(seed, size)
        assert full.headers["Content-MD5"] == hashlib.md5(full.content).hexdigest()
        assert full.headers["x-openstack-request-id"] == rid and "X-Accel-Redirect" not in full.headers
        # Who sent the bytes: nginx from the store (x-accel) or gunicorn through the proxy.
        assert f'"bytes_out": {0 if accel else size}' in _access_line(srv, rid)
        for first, last in ((0, 0), (MIB - 7, 3 * MIB + 5), (size - 1000, size - 1)):
            part = requests.get(f"{nginx.url}/v2/images/{image_id}/file", timeout=60,
                                headers={"X-Auth-Token": token, "Range": f"bytes={first}-{last}"})
            assert part.status_code == 206
            assert part.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
            assert part.content == streams.slice_of(seed, size, first, last - first + 1)


def test_nginx_keeps_metrics_private_and_passes_health(stack):
    srv, nginx = stack
    admin = srv.token("ops", "admin,member,reader")
    assert requests.get(f"{nginx.url}/metrics", headers={"X-Auth-Token": admin}, timeout=10).status_code == 404
    health = requests.get(f"{nginx.url}/healthcheck", timeout=10)
    assert (health.status_code, health.text) == (200, "OK\n")
    # Straight to gunicorn from an allowed address (the example allows 127.0.0.1): no token needed.
    assert requests.get(f"{srv.url}/metrics", timeout=10).status_code == 200
    # A proxied request would come from that same address: it needs a token.
    assert requests.get(f"{srv.url}/metrics", headers={"X-Forwarded-For": "198.51.100.4"},
                        timeout=10).status_code == 401
