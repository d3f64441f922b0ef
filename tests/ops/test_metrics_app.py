"""/metrics, /healthcheck and /v2/info/health through the app: who may read them, and what
the counters say after each kind of request and upload outcome (deltas: counters are per process)."""
from __future__ import annotations

import os
import shutil
import uuid

import pytest

from imagedata.config import ConfigError
from imagedata.app import create_app
from tests.conftest import make_env
from tests.helpers import Body, with_env
from tests.ops.helpers import parse_metrics, value
from tests.test_api_data import put_stream

OCTET = "application/octet-stream"


def status(response) -> int:
    """Close the response (the observer reports a request when its body is closed); its status."""
    response.close()
    return response.status_code


@pytest.fixture
def scrape(client, admin_token):
    """The current metrics, as an admin reads them."""

    def read():
        response = client.get("/metrics", headers={"X-Auth-Token": admin_token})
        assert response.status_code == 200, response.data
        assert response.mimetype == "text/plain"
        return parse_metrics(response.get_data(as_text=True))

    return read


def test_metrics_need_an_admin(client, auth, admin_token):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=auth).status_code == 403
    assert client.get("/metrics", headers={"X-Auth-Token": admin_token}).status_code == 200
    assert client.get("/metrics", headers={"X-Auth-Token": admin_token}, data=b"x").status_code == 400


@with_env(IMAGEDATA_METRICS_ALLOW="10.1.0.0/16, 192.0.2.7")
def test_metrics_allow_list_is_for_direct_clients_only(client):
    def get(addr, **headers):
        return client.get("/metrics", environ_base={"REMOTE_ADDR": addr}, headers=headers).status_code

    assert get("10.1.2.3") == 200
    assert get("192.0.2.7") == 200
    assert get("10.2.0.1") == 401
    assert get("127.0.0.1") == 401
    # Through a proxy every client has the proxy's address: a token is needed then.
    assert get("10.1.2.3", **{"X-Forwarded-For": "203.0.113.9"}) == 401
    assert get("10.1.2.3", Forwarded="for=203.0.113.9") == 401


def test_a_bad_allow_list_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="IMAGEDATA_METRICS_ALLOW"):
        create_app(make_env(tmp_path, IMAGEDATA_METRICS_ALLOW="10.0.0.0/8,not-a-network"))


def test_requests_are_counted_by_route_template_not_by_path(client, auth, scrape):
    before = scrape()
    for _ in range(3):
        assert status(client.get(f"/v2/images/{uuid.uuid4()}", headers=auth)) == 404
    assert status(client.get("/v2/no/such/route", headers=auth)) == 404
    after = scrape()
    labels = dict(method="GET", route="/v2/images/<image_id>", status="404")
    assert value(after, "imagedata_http_requests_total", **labels) - \
        value(before, "imagedata_http_requests_total", **labels) == 3
    unmatched = dict(method="GET", route="(unmatched)", status="404")
    assert value(after, "imagedata_http_requests_total", **unmatched) - \
        value(before, "imagedata_http_requests_total", **unmatched) == 1
    assert not any(str(labels_).find("no/such") >= 0 for _, labels_ in after)
    count = dict(method="GET", route="/v2/images/<image_id>")
    assert value(after, "imagedata_http_request_duration_seconds_count", **count) - \
        value(before, "imagedata_http_request_duration_seconds_count", **count) == 3


def _outcome(samples, outcome):
    return value(samples, "imagedata_upload_outcomes_total", outcome=outcome)


@with_env(IMAGEDATA_IMAGE_SIZE_CAP=1000)
def test_upload_outcomes_bytes_and_in_flight(app, client, auth, new_image, upload, scrape, tmp_path):
    from imagedata import metrics

    before = scrape()
    seen = {}

    def peek(n):
        if n == 2:
            seen["in_flight"] = metrics.get().in_flight._value.get()

    ok = new_image()["id"]
    assert status(put_stream(client, ok, Body(b"a" * 600, piece=100, on_read=peek), auth, content_length=600)) == 204
    assert status(upload(ok, b"again")) == 409  # not queued any more
    assert status(upload(new_image()["id"], b"b" * 5000)) == 413  # refused before a byte is read
    assert status(upload(new_image(disk_format="qcow2")["id"], b"not a qcow2 image" * 10)) == 415
    short = new_image()["id"]
    assert status(put_stream(client, short, Body(b"c" * 50), auth, content_length=100)) == 400
    gone = new_image()["id"]

    def delete_meanwhile(n):
        if n == 2:
            assert app.test_client().delete(f"/v2/images/{gone}", headers=auth).status_code == 204

    assert status(put_stream(client, gone, Body(b"d" * 40, on_read=delete_meanwhile), auth,
                             content_length=40)) == 410
    broken = new_image()["id"]

    def lose_store(n):
        if n == 2:
            shutil.rmtree(tmp_path / "stores" / "slow")

    assert status(put_stream(client, broken, Body(b"e" * 40, on_read=lose_store),
                             {**auth, "X-Image-Meta-Store": "slow"}, content_length=40)) == 503
    os.makedirs(tmp_path / "stores" / "slow")
    download = client.get(f"/v2/images/{ok}/file", headers=auth)
    assert download.status_code == 200 and len(download.data) == 600
    download.close()
    after = scrape()
    assert seen == {"in_flight": 1.0}
    assert value(after, "imagedata_uploads_in_flight") == 0
    expected = {"204": 1, "409": 1, "413": 1, "415": 1, "client_gone": 1, "410": 1, "store_error": 1}
    assert {k: _outcome(after, k) - _outcome(before, k) for k in expected} == expected
    uploaded = value(after, "imagedata_upload_bytes_total") - value(before, "imagedata_upload_bytes_total")
    assert uploaded == 600 + 170 + 50 + 40 + 40  # what was read, whatever became of it
    downloaded = value(after, "imagedata_download_bytes_total") - value(before, "imagedata_download_bytes_total")
    assert downloaded == 600


def test_store_health_and_free_bytes(client, scrape, tmp_path):
    samples = scrape()
    assert value(samples, "imagedata_store_up", store="local") == 1
    assert value(samples, "imagedata_store_free_bytes", store="local") > 0
    shutil.rmtree(tmp_path / "stores" / "slow")
    samples = scrape()
    assert value(samples, "imagedata_store_up", store="slow") == 0
    assert ("imagedata_store_free_bytes", frozenset({("store", "slow")})) not in samples


def test_scrub_and_recovery_findings(app, runner, client, scrape, tmp_path):
    from imagedata.db import database
    from imagedata.models import Image, utcnow

    (tmp_path / "stores" / "local" / "stray-file").write_bytes(b"x")
    with database.connection_context():
        Image.create(id=str(uuid.uuid4()), status="saving", owner="p1", attempt_store="local",
                     attempt=uuid.uuid4().hex, attempt_host="elsewhere", attempt_pid=1,
                     attempt_heartbeat=utcnow().replace(year=2000))
    before = scrape()
    assert runner.invoke(args=["recover"]).exit_code == 0
    assert runner.invoke(args=["scrub"]).exit_code == 1
    after = scrape()
    assert value(after, "imagedata_lease_recoveries_total") - value(before, "imagedata_lease_recoveries_total") == 1
    assert value(after, "imagedata_scrub_last_findings", kind="orphan") == 1
    assert value(after, "imagedata_scrub_last_findings", kind="broken") == 0
    assert value(after, "imagedata_scrub_findings_total", kind="orphan") - \
        value(before, "imagedata_scrub_findings_total", kind="orphan") == 1
    assert value(after, "imagedata_scrub_last_run_timestamp_seconds") > 0


def test_healthcheck_stays_glance_plain(client):
    response = client.get("/healthcheck")
    assert (response.status_code, response.data, response.mimetype) == (200, b"OK\n", "text/plain")
    assert client.head("/healthcheck").status_code == 200


def test_detailed_health_is_for_admins(client, auth, admin_token, tmp_path):
    assert client.get("/v2/info/health").status_code == 401
    assert client.get("/v2/info/health", headers=auth).status_code == 403
    response = client.get("/v2/info/health", headers={"X-Auth-Token": admin_token})
    assert response.status_code == 200
    report = response.get_json()
    assert report["status"] == "ok"
    assert report["database"]["reachable"] is True
    assert [(s["id"], s["type"], s["default"], s["writable"]) for s in report["stores"]] == [
        ("local", "file", True, True), ("slow", "file", False, True)]
    assert all(s["free_bytes"] > 0 for s in report["stores"])
    # Cached for a few seconds: a load balancer polling it costs nothing.
    shutil.rmtree(tmp_path / "stores" / "slow")
    assert client.get("/v2/info/health", headers={"X-Auth-Token": admin_token}).get_json() == report
    assert client.get("/healthcheck").status_code == 503  # the plain check sees the store at once


def test_detailed_health_reports_a_missing_store(client, admin_token, tmp_path):
    shutil.rmtree(tmp_path / "stores" / "slow")
    response = client.get("/v2/info/health", headers={"X-Auth-Token": admin_token})
    assert response.status_code == 503
    report = response.get_json()
    assert report["status"] == "degraded"
    slow = next(s for s in report["stores"] if s["id"] == "slow")
    assert slow == {"id": "slow", "type": "file", "default": False, "writable": False, "problem": "missing",
                    "free_bytes": None}
    assert str(tmp_path) not in response.get_data(as_text=True)
