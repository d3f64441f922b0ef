"""Property-based fuzzing: upload and download headers (hypothesis, Flask test client), and the
whole OpenAPI document against a live gunicorn (schemathesis). Never a 5xx."""
from __future__ import annotations

import os
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import store_files
from tests.e2e.server import Server
from tests.faults.helpers import count, saw

# Header parsing, not the database: SQLite only (the other modules cover PostgreSQL).
DB_BACKENDS = ("sqlite",)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=40)
SIZES = st.one_of(st.sampled_from(["-1", "abc", "1e3", "99999999999999999999999", "", " 5 ", "5", "0", "0x5",
                                   "+5", "5.0", "٥", str(1 << 64), "4", "6"]),
                  st.integers(-10, 1 << 70).map(str), HEADER_TEXT)
TYPES = st.one_of(st.sampled_from(["application/octet-stream", "application/octet-stream; charset=x",
                                   "APPLICATION/OCTET-STREAM", "text/plain", "", "application/json",
                                   "application/octet-stream;;", "*/*"]), HEADER_TEXT)
STORES = st.one_of(st.sampled_from(["local", "slow", "", " ", "../local", "/tmp", "local/../slow", "%2e%2e",
                                    "os_glance_staging_store", "LOCAL", "a" * 100]), HEADER_TEXT)
RANGE = st.one_of(st.from_regex(r"\Abytes=-?[0-9]{0,25}-?[0-9]{0,25}(,[0-9]{0,3}-[0-9]{0,3})?\Z"),
                  st.sampled_from(["bytes=0-0", "bytes=-0", "bytes=5-2", "items=0-1", "bytes=", "bytes=-",
                                   "bytes=0-1,2-3"]), HEADER_TEXT)
CONTENT_RANGE = st.one_of(st.from_regex(r"\Abytes (\*|[0-9]{0,20}-[0-9]{0,20})/(\*|[0-9]{0,20})\Z"), HEADER_TEXT)
ETAGISH = st.one_of(st.sampled_from(["*", '"x"', "W/\"x\"", "", ","]), HEADER_TEXT)
UPLOAD_STATUSES = {204, 400, 409, 413, 415}
DOWNLOAD_STATUSES = {200, 206, 304, 400, 416}
# FUZZ_EXAMPLES=60 (for example) searches harder than CI's bounded run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def _optional(strategy):
    return st.one_of(st.none(), strategy)


@FUZZ
@given(content_type=_optional(TYPES), size=_optional(SIZES), store=_optional(STORES),
       body=st.binary(max_size=8))
def test_fuzz_upload_headers(client, auth, new_image, tmp_path, content_type, size, store, body):
    image_id = new_image()["id"]
    headers = dict(auth)
    for name, value in (("Content-Type", content_type), ("x-openstack-image-size", size),
                        ("X-Image-Meta-Store", store)):
        if value is not None:
            headers[name] = value
    response = client.put(f"/v2/images/{image_id}/file", data=body, headers=headers)
    count("inputs fuzzed")
    saw(response.status_code, fuzz=True)
    assert response.status_code in UPLOAD_STATUSES, (headers, response.status_code, response.data)
    image = client.get(f"/v2/images/{image_id}", headers=auth).get_json()
    if response.status_code == 204:
        assert (image["status"], image["size"]) == ("active", len(body))
    else:
        assert image["status"] == "queued"
        assert not [f for f in store_files(tmp_path) if image_id in f]


@pytest.fixture
def images(client, auth, new_image, upload):
    active = new_image()["id"]
    assert upload(active, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ").status_code == 204
    empty = new_image()["id"]
    assert upload(empty, b"").status_code == 204
    queued = new_image()["id"]
    etag = client.get(f"/v2/images/{active}/file", headers=auth).headers["ETag"]
    return {"active": active, "empty": empty, "queued": queued, "etag": etag}


@FUZZ
@given(which=st.sampled_from(["active", "active", "empty", "queued"]), range_=_optional(RANGE),
       content_range=_optional(CONTENT_RANGE), if_range=_optional(st.one_of(ETAGISH, st.just("ETAG"))),
       if_none_match=_optional(st.one_of(ETAGISH, st.just("ETAG"))), method=st.sampled_from(["GET", "HEAD"]))
def test_fuzz_download_headers(client, auth, images, which, range_, content_range, if_range, if_none_match,
                               method):
    headers = dict(auth)
    for name, value in (("Range", range_), ("Content-Range", content_range), ("If-Range", if_range),
                        ("If-None-Match", if_none_match)):
        if value is not None:
            headers[name] = images["etag"] if value == "ETAG" else value
    response = client.open(f"/v2/images/{images[which]}/file", method=method, headers=headers)
    count("inputs fuzzed")
    saw(response.status_code, fuzz=True)
    allowed = DOWNLOAD_STATUSES | ({204} if which == "queued" else set())
    assert response.status_code in allowed, (which, headers, response.status_code, response.data)
    if method == "GET" and response.status_code == 206:
        first, last = response.headers["Content-Range"].split(" ")[1].split("/")[0].split("-")
        assert response.data == b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"[int(first): int(last) + 1]
    if method == "GET" and response.status_code == 200:
        assert len(response.data) == int(response.headers["Content-Length"])


# -- schemathesis against a live server ------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("schemathesis"), IMAGEDATA_LOG_LEVEL="WARNING").start()
    yield srv
    srv.stop()


def unknown_coding_refused(case, response) -> bool:
    """RFC 9112 §6.1: gunicorn answers 501 to a transfer coding it does not implement (spec 2.8)."""
    headers = {k.lower(): v for k, v in (case.headers or {}).items()}
    coding = headers.get("transfer-encoding")
    return response.status_code == 501 and coding is not None and coding.strip().lower() != "chunked"


@pytest.mark.e2e
def test_schemathesis_live_server_never_5xx(live):
    import schemathesis
    from schemathesis import GenerationMode

    # Glance's JSON-patch media type is JSON on the wire.
    schemathesis.serializer.alias("application/openstack-images-v2.1-json-patch", "application/json")
    admin = live.token("ops", roles="admin")
    member = live.token("p1")
    schema = schemathesis.openapi.from_url(f"{live.url}/v2/openapi.json", timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    existing = requests.post(f"{live.url}/v2/images", headers={"X-Auth-Token": member}, timeout=10,
                             json={"name": "fuzz", "disk_format": "raw", "container_format": "bare"}).json()["id"]
    session = requests.Session()
    server_errors = []
    calls = {"n": 0}
    started = time.monotonic()

    def run(operation, mode, path_parameters, token, examples):
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

        @settings(max_examples=examples, deadline=None, derandomize=False, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def check(case):
            response = case.call(base_url=live.url, session=session, headers={"X-Auth-Token": token}, timeout=10)
            calls["n"] += 1
            count("inputs fuzzed")
            saw(response.status_code, fuzz=True)
            if response.status_code >= 500 and not unknown_coding_refused(case, response):
                server_errors.append((operation.label, response.status_code, case.as_curl_command()))

        check()

    for operation in operations:
        params = {"image_id": existing} if "{image_id}" in operation.path else None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for token in (admin, member):
                try:
                    run(operation, mode, params, token, EXAMPLES)
                    if params:
                        run(operation, mode, None, token, 4)
                except Exception as exc:  # generation impossible for this mode (e.g. nothing to negate)
                    if type(exc).__name__ not in ("Unsatisfiable", "InvalidArgument", "FailedHealthCheck"):
                        raise
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(operations)} operations, {calls['n']} calls in {elapsed:.1f}s, "
          f"{len(server_errors)} server errors")
    count("schemathesis calls", calls["n"])
    assert server_errors == [], server_errors[:10]
    assert calls["n"] > 100
    assert requests.get(f"{live.url}/versions", timeout=5).status_code == 200
