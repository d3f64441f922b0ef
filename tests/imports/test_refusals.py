"""web-download's address rules on an instance without IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS.

Loopback origins listen where each URL points; the instance allows their ports
(IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS), so what refuses each URL is the address rule alone:
400 at import time naming the rule, no task, the image still `queued`, and no connection in
the origins' logs. (A redirect to a refused place is in test_web_download.py: it needs an
allowed origin to redirect from, which only an allow list gives on loopback.)
"""
from __future__ import annotations

import pytest

from tests.imports.helpers import Api, web_download
from tests.webfetch.origin import Origin

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def origins():
    with Origin(b"inside", host="127.0.0.1") as v4, Origin(b"inside", host="::1") as v6:
        yield v4, v6


@pytest.fixture(scope="module")
def caller(start_module_server, origins):
    v4, v6 = origins
    srv = start_module_server("refusals", IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS=f"{v4.port},{v6.port}",
                              IMAGEDATA_LOG_LEVEL="INFO")
    return Api(srv.url, srv.token("p1"))


# (host as the URL spells it, which origin listens there, what the 400 must say)
REFUSED = [
    ("127.0.0.1", "v4", "127.0.0.1 is a loopback address (127.0.0.0/8)"),
    ("2130706433", "v4", "'2130706433' spells an IPv4 address in a non-standard form"),
    ("0x7f000001", "v4", "'0x7f000001' spells an IPv4 address in a non-standard form"),
    ("0177.0.0.1", "v4", "'0177.0.0.1' spells an IPv4 address in a non-standard form"),
    ("localhost", "v4", "localhost resolves to 127.0.0.1, which is a loopback address"),
    ("[::1]", "v6", "::1 is a loopback address (::1/128)"),
    ("[::ffff:127.0.0.1]", "v4", "::ffff:7f00:1 is an IPv4-mapped IPv6 address"),
]


@pytest.mark.parametrize("host,where,why", REFUSED, ids=[case[0] for case in REFUSED])
def test_an_inward_url_is_refused_at_import_time_and_never_fetched(caller, origins, host, where, why):
    origin = dict(zip(("v4", "v6"), origins))[where]
    url = f"http://{host}:{origin.port}/image"
    image_id = caller.create()
    response = caller.start(image_id, web_download(url))
    assert response.status_code == 400, response.text
    assert f"The URL {url} is refused: " in response.text and why in response.text, response.text
    rule = "only dotted decimal" if "non-standard" in why else "only globally routable addresses may be fetched"
    assert rule in response.text
    assert caller.tasks(image_id) == []
    image = caller.show(image_id)
    assert image["status"] == "queued" and "os_glance_import_task" not in image
    assert origin.connections == [] and origin.requests == []
