"""A page served from another origin uploads through CORS when its origin is listed, and the
browser refuses it the answers when it is not (IMAGEDATA_CORS_ALLOWED_ORIGINS)."""
from __future__ import annotations

import http.server
import threading

import pytest
import requests

from tests.e2e.server import Server

pytestmark = pytest.mark.e2e

# What Horizon's direct upload does from its own origin: create the image, PUT the bytes with
# the user's token, read the headers the answers expose.
UPLOAD_SCRIPT = """async ([api, token]) => {
  const headers = {"X-Auth-Token": token, "x-openstack-request-id": "req-from-browser"};
  try {
    const created = await fetch(`${api}/v2/images`, {method: "POST",
      headers: {...headers, "Content-Type": "application/json"},
      body: JSON.stringify({name: "cors", disk_format: "raw", container_format: "bare"})});
    const image = await created.json();
    const data = new Blob([new Uint8Array(65536).fill(7)]);
    const put = await fetch(`${api}/v2/images/${image.id}/file`, {method: "PUT",
      headers: {...headers, "Content-Type": "application/octet-stream"}, body: data});
    const head = await fetch(`${api}/v2/images/${image.id}/file`, {method: "HEAD", headers});
    return {ok: true, location: created.headers.get("Location"), put: put.status,
            md5: head.headers.get("Content-MD5"), id: image.id};
  } catch (error) {
    return {ok: false, error: String(error)};
  }
}"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = b"<!doctype html><title>another origin</title><p>another origin</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve_page() -> http.server.ThreadingHTTPServer:
    """A tiny site on its own loopback port: another origin than the service."""
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    return site


@pytest.fixture(scope="module")
def origins():
    sites = [serve_page(), serve_page()]
    yield [f"http://127.0.0.1:{site.server_address[1]}" for site in sites]
    for site in sites:
        site.shutdown()
        site.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, origins):
    srv = Server(tmp_path_factory.mktemp("cors"), IMAGEDATA_CORS_ALLOWED_ORIGINS=origins[0]).start()
    yield srv
    srv.stop()


def test_a_listed_origin_uploads_and_another_is_refused(browser, server, origins, shots):
    token = server.token("p1")
    context = browser.new_context()
    page = context.new_page()
    page.goto(origins[0])
    allowed = page.evaluate(UPLOAD_SCRIPT, [server.url, token])
    assert allowed["ok"], allowed
    assert allowed["put"] == 204 and allowed["location"].endswith(allowed["id"])
    assert allowed["md5"] == "b295108dc57de3620c369da0f0af32b1"  # exposed: the page can read it
    image = requests.get(f"{server.url}/v2/images/{allowed['id']}", headers={"X-Auth-Token": token}, timeout=10).json()
    assert image["status"] == "active" and image["size"] == 65536
    shots.take(page, "cors-allowed-origin")

    page.goto(origins[1])
    refused = page.evaluate(UPLOAD_SCRIPT, [server.url, token])
    assert not refused["ok"] and "Failed to fetch" in refused["error"], refused
    names = [i["name"] for i in requests.get(f"{server.url}/v2/images", headers={"X-Auth-Token": token},
                                             timeout=10).json()["images"]]
    assert names == ["cors"]  # the refused preflight stopped the create: nothing was made
    context.close()
