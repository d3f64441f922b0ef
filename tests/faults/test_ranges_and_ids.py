"""Range headers (table-driven, Flask test client and raw sockets), and traversal attempts through
image ids, store ids and a symlink planted in a store (inotify proves the target is never opened)."""
from __future__ import annotations

import os

import pytest
import requests

from tests.faults.helpers import (OpenWatch, assert_no_path, count, create, files_of, put, raw_request,
                                  request_head, saw, scrub, show)

pytestmark = pytest.mark.e2e
DATA = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"

RANGES = [
    # value (bytes, sent verbatim on the wire) -> allowed statuses; slices are checked on 206
    (b"bytes=3-10", {206}), (b"bytes=0-0", {206}), (b"bytes=-2", {206}), (b"bytes=-99999", {206}),
    (b"bytes=0-999999", {206}), (b"bytes=25-", {206}), (b"bytes=0-", {206}),
    (b"bytes=26-", {416}), (b"bytes=100-200", {416}), (b"bytes=5-2", {416}), (b"bytes=-0", {416}),
    (b"bytes=-", {400, 416}), (b"bytes=--1", {400, 416}), (b"bytes=abc", {400, 416}), (b"bytes=1-2-3", {400, 416}),
    (b"items=0-4", {400, 416}), (b"bytes=\xd9\xa1-\xd9\xa2", {400, 416}), (b"bytes=0-1,5-6", {400}),
    (b"bytes=0-1, 5-6", {400}), (b"bytes=,", {400}), (b"bytes=18446744073709551616-", {416}),
    (b"bytes=0-18446744073709551616", {206, 416}), (b"bytes=" + b"9" * 400 + b"-", {416}),
    (b"bytes=-" + b"9" * 400, {206, 416}), (b"", {400, 416}), (b" ", {400, 416}), (b"bytes", {400, 416}),
    (b"bytes=", {400, 416}), (b"bytes = 0-1", {206, 400, 416}), (b"BYTES=0-1", {206, 400, 416}),
    (b"bytes=0x1-0x2", {400, 416}), (b"bytes=1.5-2", {400, 416}), (b"bytes=+1-2", {206, 400, 416}),
    (b"bytes=0-1\x00", {400, 416}), (b"bytes=-1-", {400, 416}), (b"bytes=3-3", {206}),
]
CONTENT_RANGES = [(b"bytes 0-4/26", {206}), (b"bytes */26", {400, 416}), (b"bytes 5-2/26", {400, 416}),
                  (b"bytes 0-99/26", {206, 416}), (b"bytes 30-40/*", {416}), (b"garbage", {400, 416}),
                  (b"bytes 0-4/3", {400, 416})]


def _check_206(status, headers, body, where):
    if status != 206:
        return
    unit, _, spec = headers["content-range"].partition(" ")
    first, _, rest = spec.partition("-")
    last, _, total = rest.partition("/")
    assert (unit, total) == ("bytes", "26"), where
    assert body == DATA[int(first): int(last) + 1], where
    assert int(headers["content-length"]) == len(body), where


@pytest.fixture(scope="module")
def srv(start_module_server):
    return start_module_server("ranges", IMAGEDATA_LOG_LEVEL="WARNING")


@pytest.fixture(scope="module")
def stoken(srv):
    return srv.token("p1")


@pytest.fixture(scope="module")
def active(srv, stoken):
    image_id = create(srv, stoken)
    assert put(srv, stoken, image_id, DATA).status_code == 204
    return image_id


def test_ranges_over_real_sockets(srv, stoken, active):
    cases = [([("Range", v)], allowed, f"Range {v!r}") for v, allowed in RANGES]
    cases += [([("Content-Range", v)], allowed, f"Content-Range {v!r}") for v, allowed in CONTENT_RANGES]
    cases += [([("Range", b"bytes=0-1"), ("Range", b"bytes=5-6")], {400, 416}, "two Range headers"),
              ([("Range", b"bytes=0-1"), ("Range", b"bytes=0-1")], {206, 400, 416}, "two equal Range headers"),
              ([("Range", b"bytes=0-4"), ("Content-Range", b"bytes 10-12/26")], {206}, "Range and Content-Range")]
    for headers, allowed, where in cases:
        for method in ("GET", "HEAD"):
            response = raw_request(srv, request_head(method, f"/v2/images/{active}/file", stoken, headers))
            assert response is not None, where
            count("range cases")
            if response.status >= 500:
                count("5xx seen")
            assert response.status in allowed, (method, where, response)
            if method == "GET":
                _check_206(response.status, response.headers, response.body, where)
    assert requests.get(f"{srv.url}/versions", timeout=5).status_code == 200


def test_ranges_on_queued_and_empty_images(srv, stoken):
    queued = create(srv, stoken)
    empty = create(srv, stoken)
    assert put(srv, stoken, empty, b"").status_code == 204
    for value, _allowed in RANGES:
        for image_id, allowed in ((queued, {204, 400}), (empty, {400, 416})):
            response = raw_request(srv, request_head("GET", f"/v2/images/{image_id}/file", stoken,
                                                     [("Range", value)]))
            count("range cases")
            if response.status >= 500:
                count("5xx seen")
            assert response.status in allowed, (image_id == queued, value, response)


def test_ranges_with_test_client(client, auth, new_image, upload):
    image_id = new_image()["id"]
    assert upload(image_id, DATA).status_code == 204
    for value, allowed in RANGES:
        try:
            text = value.decode("latin-1")
        except UnicodeDecodeError:
            continue
        response = client.get(f"/v2/images/{image_id}/file", headers={**auth, "Range": text})
        saw(response.status_code, fuzz=True)
        count("range cases")
        assert response.status_code in allowed, (value, response.status_code, response.data)
        _check_206(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                   response.data, value)


# -- ids, store ids, symlinks ---------------------------------------------------------------


@pytest.fixture(scope="module")
def canary(srv):
    """A secret file outside every store root, watched for opens."""
    directory = os.path.join(srv.root, "canary")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "passwd"), "w") as f:
        f.write("root:CANARY-SECRET:0:0\n")
    watch = OpenWatch(directory)
    watch.events()
    yield directory, watch
    watch.close()


def _assert_canary_untouched(canary):
    directory, watch = canary
    assert watch.events() == 0, "a file outside the store roots was opened"


BAD_IDS = ["..", "..%2F..%2Fcanary%2Fpasswd", "%2e%2e%2f%2e%2e%2fcanary%2fpasswd", "%252e%252e%252fcanary",
           "..%5c..%5ccanary%5cpasswd", "%c0%ae%c0%ae%c0%af", "%00", "x%00", "..%00", "a" * 5000,
           "not-a-uuid", "00000000-0000-0000-0000-00000000000g", "../../canary/passwd", "..;/canary",
           "%2F", "%2fetc%2fpasswd"]


def test_traversal_through_image_ids(srv, stoken, active, canary):
    before = files_of(srv)
    ids = BAD_IDS + [active + "%00", active + "%2F..%2F..%2Fcanary", active + "/../../canary/passwd",
                     active.upper(), "%2e%2e%2f" + active]
    for image_id in ids:
        for method, suffix, extra, body in (
                ("GET", "/file", [], b""), ("HEAD", "/file", [], b""), ("GET", "", [], b""),
                ("PUT", "/file", [("Content-Type", "application/octet-stream"), ("Content-Length", "4")], b"evil"),
                ("DELETE", "", [], b"")):
            if image_id == active.upper() and method == "DELETE":
                continue  # the uppercase id is the same image (ids are case-folded): it would delete it
            response = raw_request(srv, request_head(method, f"/v2/images/{image_id}{suffix}", stoken, extra) + body)
            where = (method, image_id[:60], suffix)
            count("traversal cases")
            assert response is not None, where
            if response.status >= 500:
                count("5xx seen")
            assert_no_path(srv, response.text)
            assert b"CANARY" not in response.body
            if image_id == active.upper() and method in ("GET", "HEAD"):
                assert response.status in (200, 400, 404), where  # an alias of the same image, or refused
                if method == "GET" and suffix == "/file" and response.status == 200:
                    assert response.body == DATA
            else:
                assert response.status in (300, 308, 400, 404, 405, 409), (where, response)
    _assert_canary_untouched(canary)
    assert files_of(srv) == before, "a traversal request wrote or removed a file"
    assert show(srv, stoken, active)[1]["status"] == "active"


BAD_STORES = [b"", b" ", b"../slow", b"../../canary", b"/tmp", b"local/../slow", b"%2e%2e", b"..", b"local\x00",
              b"os_glance_staging_store", b"os_glance_tasks_store", b"LOCAL", b"local/", b"./local",
              b"s" * 300, "slöw".encode(), b"file:///tmp"]


def test_traversal_through_store_ids(srv, stoken, canary):
    before = files_of(srv)
    image_id = create(srv, stoken)
    for store in BAD_STORES:
        response = raw_request(srv, request_head("PUT", f"/v2/images/{image_id}/file", stoken, [
            ("Content-Type", "application/octet-stream"), ("Content-Length", "4"),
            ("X-Image-Meta-Store", store)]) + b"evil")
        count("traversal cases")
        assert response is not None, store
        if response.status >= 500:
            count("5xx seen")
        assert response.status == 400, (store, response)
        assert_no_path(srv, response.text)
    # Two X-Image-Meta-Store headers with different values.
    response = raw_request(srv, request_head("PUT", f"/v2/images/{image_id}/file", stoken, [
        ("Content-Type", "application/octet-stream"), ("Content-Length", "4"),
        ("X-Image-Meta-Store", "local"), ("X-Image-Meta-Store", "slow")]) + b"evil")
    assert response.status == 400, response
    _assert_canary_untouched(canary)
    assert files_of(srv) == before
    assert show(srv, stoken, image_id)[1]["status"] == "queued"


def test_symlink_in_store_is_never_followed(srv, stoken, canary):
    directory, _watch = canary
    image_id = create(srv, stoken)
    assert put(srv, stoken, image_id, b"x" * 23).status_code == 204  # the canary's size
    (path,) = files_of(srv, image_id)
    os.unlink(path)
    os.symlink(os.path.join(directory, "passwd"), path)
    for headers in ([], [("Range", "bytes=0-5")]):
        response = raw_request(srv, request_head("GET", f"/v2/images/{image_id}/file", stoken, headers))
        count("traversal cases")
        assert response.status == 503, response
        assert b"CANARY" not in response.body
        assert_no_path(srv, response.text)
    _assert_canary_untouched(canary)
    orphans, broken, out = scrub(srv)
    count("broken images found", -broken)  # planted on purpose
    assert broken == 1 and image_id in out
    _assert_canary_untouched(canary)
    assert requests.delete(f"{srv.url}/v2/images/{image_id}", headers={"X-Auth-Token": stoken}).status_code == 204
    assert os.path.exists(os.path.join(directory, "passwd")), "the symlink target was removed"
    _assert_canary_untouched(canary)


def test_canary_watch_works(canary):
    directory, watch = canary
    with open(os.path.join(directory, "passwd")) as f:
        f.read()
    assert watch.events() > 0
