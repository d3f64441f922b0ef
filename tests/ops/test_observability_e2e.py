"""Metrics and logs of a real gunicorn: counters add up across workers and survive worker deaths
and reloads (but not a restart), the CLI's findings reach /metrics, and with JSON logs every line
is one object, every request has one access line, and no token or store credential appears."""
from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid

import pytest
import requests

from tests.e2e import streams
from tests.ops.helpers import SlowUpload, create, json_lines, put, request_id, scrape, value

pytestmark = pytest.mark.e2e
MIB = streams.MIB
NOT_FOUND = dict(method="GET", route="/v2/images/<image_id>", status="404")


def _misses(srv, token, count):
    for _ in range(count):  # a new connection each: the requests spread over the workers
        assert requests.get(f"{srv.url}/v2/images/{uuid.uuid4()}", headers={"X-Auth-Token": token},
                            timeout=10).status_code == 404


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_metrics_across_workers_deaths_reloads_restarts_and_commands(start_server):
    srv = start_server("srv")
    try:
        token, admin = srv.token("p1"), srv.token("ops", "admin")
        _misses(srv, token, 30)
        served_by = {line.split()[2] for line in srv.log().splitlines() if "GET /v2/images/<image_id> 404" in line}
        assert len(served_by) == 2, served_by  # both workers answered some
        assert value(scrape(srv.url, admin), "imagedata_http_requests_total", **NOT_FOUND) == 30

        # A worker killed in the middle of an upload: in flight drops back, counters stay.
        image_id = create(srv.url, token)
        upload = SlowUpload(srv.port, token, image_id, 4 * MIB)
        assert upload.send(MIB)
        _wait(lambda: value(scrape(srv.url, admin), "imagedata_uploads_in_flight") == 1)

        def lease_pid():
            with sqlite3.connect(srv.db_path) as db:
                return db.execute("SELECT attempt_pid FROM image WHERE id = ?", (image_id,)).fetchone()[0]

        _wait(lambda: lease_pid() is not None)  # the gauge rises just before the lease is taken
        pid = lease_pid()
        os.kill(pid, signal.SIGKILL)
        assert upload.status() is None
        _wait(lambda: srv.new_workers({pid}))
        samples = scrape(srv.url, admin)
        assert value(samples, "imagedata_uploads_in_flight") == 0
        assert value(samples, "imagedata_http_requests_total", **NOT_FOUND) == 30

        # A reload replaces every worker: the totals are still there.
        old = set(srv.worker_pids())
        srv.proc.send_signal(signal.SIGHUP)
        _wait(lambda: srv.new_workers(old))
        _misses(srv, token, 5)
        assert value(scrape(srv.url, admin), "imagedata_http_requests_total", **NOT_FOUND) == 35

        # Commands run beside the server report into its metrics.
        kept = create(srv.url, token)
        assert put(srv.url, token, kept, b"k" * 1000).status_code == 204
        lost = create(srv.url, token)
        assert put(srv.url, token, lost, b"l" * 1000).status_code == 204
        for path in srv.store_files():
            if os.path.basename(path).startswith(lost):
                os.unlink(path)
        assert srv.run_cli("verify").returncode == 1
        assert srv.run_cli("scrub").returncode == 1
        samples = scrape(srv.url, admin)
        assert value(samples, "imagedata_verify_last_images", result="ok") == 1
        assert value(samples, "imagedata_verify_last_images", result="missing") == 1
        assert value(samples, "imagedata_verify_bytes_total") == 1000
        assert value(samples, "imagedata_scrub_last_findings", kind="broken") == 1
        assert value(samples, "imagedata_upload_outcomes_total", outcome="204") == 2
    finally:
        srv.stop()

    # A new server starts from zero (its directory is wiped at start).
    again = start_server("srv")
    samples = scrape(again.url, again.token("ops", "admin"))
    assert value(samples, "imagedata_http_requests_total", **NOT_FOUND) == 0
    assert value(samples, "imagedata_verify_last_images", result="missing") == 0


def test_json_logs_one_access_line_per_request_and_no_secrets(start_server, seaweedfs):
    bucket = seaweedfs.make_bucket(f"logs-{uuid.uuid4().hex[:8]}")
    srv = start_server("srv", start=False, IMAGEDATA_LOG_FORMAT="json", IMAGEDATA_LOG_LEVEL="DEBUG",
                       **seaweedfs.env())
    srv.env["IMAGEDATA_STORES"] = f"s3={seaweedfs.store_url(bucket, 'p')},local=file://{srv.root}/stores/local"
    srv.start()
    sent = {}  # request id -> (method, route, status)
    try:
        tokens = [srv.token("p1"), srv.token("ops", "admin")]
        token = tokens[0]

        def call(method, path, expect, route, data=None, **headers):
            rid = request_id()
            response = requests.request(method, f"{srv.url}{path}", data=data, timeout=60,
                                        headers={"X-Openstack-Request-ID": rid, **headers})
            assert response.status_code == expect, (path, response.status_code, response.text)
            sent[rid] = (method, route, expect)
            return response

        auth = {"X-Auth-Token": token}
        image_id = create(srv.url, token)
        data = b"".join(streams.chunks(3, 2 * MIB))
        call("PUT", f"/v2/images/{image_id}/file", 204, "/v2/images/<image_id>/file", data,
             **auth, **{"Content-Type": "application/octet-stream"})
        chunked_id = create(srv.url, token)
        call("PUT", f"/v2/images/{chunked_id}/file", 204, "/v2/images/<image_id>/file",
             streams.chunks(4, MIB + 5, piece=100_000), **auth, **{"Content-Type": "application/octet-stream"})
        call("GET", f"/v2/images/{image_id}/file", 200, "/v2/images/<image_id>/file", **auth)
        call("GET", f"/v2/images/{image_id}/file", 206, "/v2/images/<image_id>/file", **auth, Range="bytes=5-9")
        call("GET", "/v2/images", 401, "/v2/images", **{"X-Auth-Token": token + "x"})
        call("GET", f"/v2/images/{tokens[1]}", 404, "/v2/images/<image_id>", **auth)  # a token in the path
        call("GET", "/metrics", 200, "/metrics", **{"X-Auth-Token": tokens[1]})
        call("GET", "/nowhere", 300, "/")
        # An upload the client abandons halfway: its abort line names the attempt.
        cut_id = create(srv.url, token)
        cut = SlowUpload(srv.port, token, cut_id, 2 * MIB)
        assert cut.send(MIB)
        cut.sock.close()
        time.sleep(1.0)
    finally:
        srv.stop()
    with open(srv.log_path, errors="replace") as f:
        text = f.read()
    records = json_lines(text)  # every line is one JSON object (gunicorn's own included)
    assert {r["logger"] for r in records} >= {"gunicorn.error", "imagedata.access", "imagedata.service.lifecycle"}
    access = [r for r in records if r.get("event") == "access"]
    for rid, (method, route, status) in sent.items():
        (line,) = [r for r in access if r["request_id"] == rid]
        assert (line["method"], line["route"], line["status"]) == (method, route, status)
        assert {"bytes_in", "bytes_out", "duration_ms", "project", "image_id", "client", "forwarded_for"} <= set(line)
    puts = {r["image_id"]: r for r in access if r["method"] == "PUT" and r["status"] == 204}
    assert (puts[image_id]["bytes_in"], puts[image_id]["project"]) == (2 * MIB, "p1")
    assert puts[chunked_id]["bytes_in"] == MIB + 5
    gets = [r for r in access if r["method"] == "GET" and r["route"] == "/v2/images/<image_id>/file"]
    assert sorted(r["bytes_out"] for r in gets) == [5, 2 * MIB]
    uploads = [r for r in records if r["logger"] == "imagedata.service.lifecycle"]  # the upload state machine
    for image, words in ((image_id, ("started", "finished")), (cut_id, ("started",))):
        for word in words:
            assert any(r.get("image_id") == image and word in r["message"] and len(r.get("attempt", "")) == 32
                       for r in uploads), (image, word)
    assert any(r.get("image_id") == cut_id and r["level"] in ("WARNING", "INFO") and r.get("attempt")
               and ("failed" in r["message"] or "interrupted" in r["message"]) for r in uploads)
    # No token, S3 key or secret anywhere, even at DEBUG (boto3 logs its signed requests then).
    credentials = seaweedfs.env()
    for secret in [*tokens, credentials["IMAGEDATA_S3_ACCESS_KEY_ID"], credentials["IMAGEDATA_S3_SECRET_ACCESS_KEY"]]:
        assert secret not in text
    assert "idt_" not in text
