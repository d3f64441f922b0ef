"""X-Accel-Redirect mode with a real nginx: imagedata checks and sets headers, nginx sends bytes."""
from __future__ import annotations

import hashlib
import os

import pytest
import requests

from testkit.nginx import SiteProxy, nginx_binary

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed; CI installs it")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, start_module_server):
    """imagedata (accel mode) behind a private nginx running deploy/nginx/imagedata.conf;
    yields (server, nginx base URL)."""
    srv = start_module_server("accel", IMAGEDATA_ACCEL_REDIRECT="/_accel")
    nginx = SiteProxy(tmp_path_factory.mktemp("accel-nginx"), srv.port, os.path.join(srv.root, "stores")).start()
    yield srv, nginx.url
    nginx.stop()


def test_nginx_serves_the_bytes_imagedata_authorised(stack):
    srv, url = stack
    token = srv.token("p1")
    headers = {"X-Auth-Token": token}
    data = os.urandom(3 * 1024 * 1024 + 17)
    image = requests.post(f"{url}/v2/images", json={"name": "a", "disk_format": "raw", "container_format": "bare"},
                          headers=headers).json()
    put = requests.put(f"{url}/v2/images/{image['id']}/file", data=data,
                       headers={**headers, "Content-Type": "application/octet-stream"})
    assert put.status_code == 204

    full = requests.get(f"{url}/v2/images/{image['id']}/file", headers=headers)
    assert full.status_code == 200
    assert full.content == data
    assert full.headers["Content-Type"] == "application/octet-stream"
    assert full.headers["Content-MD5"] == hashlib.md5(data).hexdigest()
    assert int(full.headers["Content-Length"]) == len(data)
    assert "X-Accel-Redirect" not in full.headers
    assert full.headers["x-openstack-request-id"].startswith("req-")
    assert full.headers["Accept-Ranges"] == "bytes"

    part = requests.get(f"{url}/v2/images/{image['id']}/file", headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"

    # imagedata still decides: no token, other projects, bad ranges never reach the store.
    assert requests.get(f"{url}/v2/images/{image['id']}/file").status_code == 401
    other = {"X-Auth-Token": srv.token("p2")}
    assert requests.get(f"{url}/v2/images/{image['id']}/file", headers=other).status_code == 404
    assert requests.get(f"{url}/v2/images/{image['id']}/file",
                        headers={**headers, "Range": "bytes=0-1,5-6"}).status_code == 400
    assert requests.get(f"{url}/v2/images/{image['id']}/file",
                        headers={**headers, "Range": f"bytes={len(data)}-"}).status_code == 416
    # The internal location cannot be reached directly.
    assert requests.get(f"{url}/_accel/local/{image['id']}").status_code == 404
