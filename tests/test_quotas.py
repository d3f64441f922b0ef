"""Per-project quotas (Flask client): image_size_total, image_count_total, image_count_uploading.

Strict reservations: the declared size (or, when unknown, everything that remains) is reserved before
the body is read, the stream is cut at the reservation with 413 naming the limit, the reservation is
settled to the real size when the image becomes active and released on any failure.
Defaults come from IMAGEDATA_QUOTA_*; `imagedata quota set --project P` overrides; 0 is unlimited.
"""
from __future__ import annotations

import os
import threading

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from tests.conftest import store_files
from tests.helpers import Body, OCTET, with_env

JSON = {"Accept": "application/json"}
LIMITS = ("image_size_total", "image_count_total", "image_count_uploading")


# --------------------------------------------------------------------------- helpers




@pytest.fixture
def who(make_token):
    spec = {"p1": ("p1", ("member", "reader")), "p1-reader": ("p1", ("reader",)),
            "p2": ("p2", ("member", "reader")), "admin": ("ops", ("admin",))}
    return {name: {"X-Auth-Token": make_token(project, roles), **JSON} for name, (project, roles) in spec.items()}




def put_stream(client, image_id, body, hdrs, chunked=False, size_header=None):
    """PUT ``body``: with Content-Length (default) or chunked, optionally with x-openstack-image-size."""
    hdrs = {**hdrs, "Content-Type": OCTET}
    if size_header is not None:
        hdrs["x-openstack-image-size"] = str(size_header)
    environ = EnvironBuilder(path=f"/v2/images/{image_id}/file", method="PUT", headers=hdrs).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = body
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(len(body.data))
    return client.open(Request(environ))


def in_thread(fn):
    """Run ``fn`` in another thread (another request, another DB connection) and return its result."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # surfaced in the test thread
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in out:
        raise out["error"]
    return out["value"]


def create(client, hdrs, **fields):
    response = client.post("/v2/images", json={"name": "q", "disk_format": "raw", "container_format": "bare",
                                               **fields}, headers=hdrs)
    assert response.status_code == 201, response.data
    return response.get_json()["id"]


def upload(client, image_id, hdrs, size, chunked=False, **kw):
    return put_stream(client, image_id, Body(b"q" * size, **kw), hdrs, chunked=chunked)


def usage(client, hdrs):
    response = client.get("/v2/info/usage", headers=hdrs)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert set(body) == {"usage"}
    return body["usage"]


def used(client, hdrs) -> tuple[int, int, int]:
    report = usage(client, hdrs)
    return tuple(report[name]["usage"] for name in LIMITS)


def show(client, image_id, hdrs):
    return client.get(f"/v2/images/{image_id}", headers=hdrs).get_json()


def assert_clean(client, image_id, hdrs, tmp_path):
    """A failed upload: image queued, no data fields, no file of it in any store."""
    image = show(client, image_id, hdrs)
    assert image["status"] == "queued"
    for field in ("size", "checksum", "os_hash_algo", "os_hash_value", "virtual_size"):
        assert image[field] is None, field
    assert [f for f in store_files(tmp_path) if image_id in os.path.basename(f)] == []


def assert_413(response, *words):
    assert response.status_code == 413, response.data
    body = response.get_json()
    assert body["code"] == "413 Request Entity Too Large"
    for word in words:
        assert word in body["message"], body["message"]


def quota_set(runner, project, **limits):
    args = ["quota", "set", "--project", project]
    for name, value in limits.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    return result.output


# --------------------------------------------------------------------------- GET /v2/info/usage


def test_usage_unlimited_by_default(client, who):
    report = usage(client, who["p1"])
    assert report == {name: {"limit": -1, "usage": 0} for name in LIMITS}


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=1000, IMAGEDATA_QUOTA_IMAGE_COUNT_TOTAL=5,
          IMAGEDATA_QUOTA_IMAGE_COUNT_UPLOADING=2)
def test_usage_reports_env_defaults_and_callers_project(client, who):
    image_id = create(client, who["p1"])
    assert upload(client, image_id, who["p1"], 100).status_code == 204
    create(client, who["p1"])
    assert usage(client, who["p1"]) == {"image_size_total": {"limit": 1000, "usage": 100},
                                         "image_count_total": {"limit": 5, "usage": 2},
                                         "image_count_uploading": {"limit": 2, "usage": 0}}
    # A reader of p1 sees p1's usage; p2 sees only its own.
    assert used(client, who["p1-reader"]) == (100, 2, 0)
    assert used(client, who["p2"]) == (0, 0, 0)


def test_usage_needs_a_token(client):
    response = client.get("/v2/info/usage", headers=JSON)
    assert response.status_code == 401
    assert response.get_json()["code"] == "401 Unauthorized"


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=1000, IMAGEDATA_QUOTA_IMAGE_COUNT_TOTAL=5)
def test_cli_override_per_project(client, who, runner):
    output = quota_set(runner, "p1", image_size_total=300, image_count_uploading=1)
    assert "quota updated for p1" in output
    assert "image_size_total\tlimit=300\tusage=0" in output
    report = usage(client, who["p1"])
    assert (report["image_size_total"]["limit"], report["image_count_total"]["limit"],
            report["image_count_uploading"]["limit"]) == (300, 5, 1)
    assert usage(client, who["p2"])["image_size_total"]["limit"] == 1000
    # Setting one limit keeps the others.
    quota_set(runner, "p1", image_count_total=9)
    report = usage(client, who["p1"])
    assert (report["image_size_total"]["limit"], report["image_count_total"]["limit"]) == (300, 9)
    shown = runner.invoke(args=["quota", "show", "--project", "p1"]).output
    assert "image_count_total\tlimit=9\tusage=0" in shown


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=10, IMAGEDATA_QUOTA_IMAGE_COUNT_TOTAL=1)
def test_cli_override_zero_is_unlimited(client, who, runner):
    quota_set(runner, "p1", image_size_total=0, image_count_total=0)
    assert usage(client, who["p1"])["image_size_total"]["limit"] == -1
    ids = [create(client, who["p1"]) for _ in range(3)]
    assert upload(client, ids[0], who["p1"], 50).status_code == 204
    assert upload(client, ids[1], who["p1"], 50, chunked=True).status_code == 204
    # p2 still has the defaults.
    create(client, who["p2"])
    assert client.post("/v2/images", json={}, headers=who["p2"]).status_code == 413


@pytest.mark.parametrize("args", [["--image-size-total", "-1"], ["--image-count-total", "x"], []])
def test_cli_rejects_bad_values(runner, args):
    result = runner.invoke(args=["quota", "set", *(["--project", "p1"] if args else []), *args])
    assert result.exit_code != 0


# --------------------------------------------------------------------------- image_count_total


@with_env(IMAGEDATA_QUOTA_IMAGE_COUNT_TOTAL=2)
def test_image_count_total(client, who):
    first = create(client, who["p1"])
    create(client, who["p1"])
    response = client.post("/v2/images", json={"name": "third"}, headers=who["p1"])
    assert_413(response, "image_count_total", "limit of 2", "current usage 2 and delta 1")
    assert used(client, who["p1"])[1] == 2
    # Per project: p2 is not affected by p1's images.
    create(client, who["p2"])
    # A deleted image no longer counts.
    assert client.delete(f"/v2/images/{first}", headers=who["p1"]).status_code == 204
    create(client, who["p1"])
    assert client.post("/v2/images", json={}, headers=who["p1"]).status_code == 413


@with_env(IMAGEDATA_QUOTA_IMAGE_COUNT_TOTAL=1)
def test_image_count_total_applies_to_images_an_admin_creates_for_a_project(client, who):
    create(client, who["p1"])
    response = client.post("/v2/images", json={"owner": "p1"}, headers=who["admin"])
    assert_413(response, "image_count_total")


@with_env(IMAGEDATA_QUOTA_IMAGE_COUNT_TOTAL=1)
def test_image_count_total_does_not_block_uploads(client, who):
    image_id = create(client, who["p1"])
    assert upload(client, image_id, who["p1"], 10).status_code == 204


# --------------------------------------------------------------------------- image_size_total, declared size


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
@pytest.mark.parametrize("declare", ["content-length", "size-header-chunked"])
def test_declared_over_quota_is_413_before_reading(client, who, tmp_path, declare):
    kept = create(client, who["p1"])
    assert upload(client, kept, who["p1"], 60).status_code == 204
    image_id = create(client, who["p1"])
    body = Body(b"d" * 41)
    if declare == "content-length":
        response = put_stream(client, image_id, body, who["p1"])
    else:
        response = put_stream(client, image_id, body, who["p1"], chunked=True, size_header=41)
    assert_413(response, "image_size_total", "100", "current usage 60 and delta 41", "40 bytes remaining")
    assert body.reads == 0
    assert_clean(client, image_id, who["p1"], tmp_path)
    assert used(client, who["p1"]) == (60, 2, 0)
    # Exactly what remains fits.
    assert upload(client, image_id, who["p1"], 40).status_code == 204
    assert used(client, who["p1"]) == (100, 2, 0)


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
@pytest.mark.parametrize("chunked", [False, True])
def test_exactly_the_quota_fits(client, who, chunked):
    image_id = create(client, who["p1"])
    assert upload(client, image_id, who["p1"], 100, chunked=chunked).status_code == 204
    assert show(client, image_id, who["p1"])["size"] == 100
    assert used(client, who["p1"]) == (100, 1, 0)


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_declared_reservation_is_held_while_streaming_then_settled(client, who):
    image_id = create(client, who["p1"])
    seen = {}

    def look(n):
        if n == 2:
            seen["usage"] = in_thread(lambda: used(client, who["p1"]))
            seen["status"] = in_thread(lambda: show(client, image_id, who["p1"])["status"])

    response = put_stream(client, image_id, Body(b"r" * 30, on_read=look), who["p1"])
    assert response.status_code == 204, response.data
    assert seen == {"usage": (30, 1, 1), "status": "saving"}
    assert used(client, who["p1"]) == (30, 1, 0)


# --------------------------------------------------------------------------- image_size_total, unknown size


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_chunked_reserves_what_remains_and_settles_to_the_real_size(client, who):
    first, second = create(client, who["p1"]), create(client, who["p1"])
    assert upload(client, first, who["p1"], 25).status_code == 204
    seen = {}

    def look(n):
        if n == 2:
            seen["usage"] = in_thread(lambda: used(client, who["p1"]))

    response = put_stream(client, second, Body(b"c" * 30, on_read=look), who["p1"], chunked=True)
    assert response.status_code == 204, response.data
    assert seen["usage"] == (100, 2, 1)  # 25 stored + the 75 that remained, reserved
    assert used(client, who["p1"]) == (55, 2, 0)


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_chunked_over_quota_is_cut_at_the_reservation(client, who, tmp_path):
    kept = create(client, who["p1"])
    assert upload(client, kept, who["p1"], 60).status_code == 204
    image_id = create(client, who["p1"])
    body = Body(b"o" * 400, piece=8)
    response = put_stream(client, image_id, body, who["p1"], chunked=True)
    assert_413(response, "image_size_total", "40")
    assert body.pos <= 48  # the stream is cut at the first piece past the 40 bytes reserved
    assert_clean(client, image_id, who["p1"], tmp_path)
    assert used(client, who["p1"]) == (60, 2, 0)


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_chunked_with_nothing_remaining_is_413_before_reading(client, who, tmp_path):
    kept = create(client, who["p1"])
    assert upload(client, kept, who["p1"], 100).status_code == 204
    image_id = create(client, who["p1"])
    body = Body(b"z" * 5)
    response = put_stream(client, image_id, body, who["p1"], chunked=True)
    assert_413(response, "image_size_total", "0 bytes remaining")
    assert body.reads == 0
    assert_clean(client, image_id, who["p1"], tmp_path)


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_zero_byte_upload_when_quota_is_full(client, who):
    """Glance: a 0-byte upload with the quota used up is allowed (size 0 is never over)."""
    kept = create(client, who["p1"])
    assert upload(client, kept, who["p1"], 100).status_code == 204
    image_id = create(client, who["p1"])
    assert upload(client, image_id, who["p1"], 0).status_code == 204
    assert show(client, image_id, who["p1"])["size"] == 0


# --------------------------------------------------------------------------- what counts, and for whom


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_quota_is_per_owner_project(client, who):
    a, b = create(client, who["p1"]), create(client, who["p2"])
    assert upload(client, a, who["p1"], 100).status_code == 204
    assert upload(client, b, who["p2"], 100).status_code == 204
    assert used(client, who["p1"])[0] == 100 and used(client, who["p2"])[0] == 100


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_admin_upload_counts_against_the_owner(client, who, tmp_path):
    kept = create(client, who["p1"])
    assert upload(client, kept, who["p1"], 80).status_code == 204
    image_id = create(client, who["p1"])
    assert_413(upload(client, image_id, who["admin"], 30), "image_size_total")
    assert_clean(client, image_id, who["p1"], tmp_path)
    assert upload(client, image_id, who["admin"], 20).status_code == 204
    assert used(client, who["p1"])[0] == 100
    assert used(client, who["admin"]) == (0, 0, 0)


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_deactivated_counts_deleted_does_not(client, who):
    image_id = create(client, who["p1"])
    assert upload(client, image_id, who["p1"], 70).status_code == 204
    assert client.post(f"/v2/images/{image_id}/actions/deactivate", headers=who["p1"]).status_code == 204
    other = create(client, who["p1"])
    assert upload(client, other, who["p1"], 31).status_code == 413
    assert client.delete(f"/v2/images/{image_id}", headers=who["p1"]).status_code == 204
    assert used(client, who["p1"]) == (0, 1, 0)
    assert upload(client, other, who["p1"], 100).status_code == 204


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_per_project_override_applies_to_uploads(client, who, runner):
    quota_set(runner, "p1", image_size_total=10)
    image_id = create(client, who["p1"])
    assert_413(upload(client, image_id, who["p1"], 11), "image_size_total", "10")
    assert upload(client, image_id, who["p1"], 10).status_code == 204
    quota_set(runner, "p1", image_size_total=20)
    other = create(client, who["p1"])
    assert upload(client, other, who["p1"], 10, chunked=True).status_code == 204


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_lowering_quota_below_usage_blocks_new_uploads_only(client, who, runner):
    image_id = create(client, who["p1"])
    assert upload(client, image_id, who["p1"], 80).status_code == 204
    quota_set(runner, "p1", image_size_total=50)
    assert used(client, who["p1"])[0] == 80
    assert client.get(f"/v2/images/{image_id}/file", headers=who["p1"]).status_code == 200
    other = create(client, who["p1"])
    assert upload(client, other, who["p1"], 1).status_code == 413
    assert upload(client, other, who["p1"], 1, chunked=True).status_code == 413


# --------------------------------------------------------------------------- releasing reservations


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
@pytest.mark.parametrize("failure", ["size-mismatch", "size-exceeds"])
def test_failed_upload_releases_its_reservation(client, who, tmp_path, failure):
    image_id = create(client, who["p1"])
    if failure == "size-mismatch":
        response = put_stream(client, image_id, Body(b"m" * 30), who["p1"], chunked=True, size_header=50)
        assert response.status_code == 400
    else:
        response = put_stream(client, image_id, Body(b"m" * 60), who["p1"], chunked=True, size_header=50)
        assert response.status_code == 400
    assert_clean(client, image_id, who["p1"], tmp_path)
    assert used(client, who["p1"]) == (0, 1, 0)
    assert upload(client, image_id, who["p1"], 100).status_code == 204


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100, IMAGEDATA_IMAGE_SIZE_CAP=50)
def test_cap_failure_releases_reservation(client, who, tmp_path):
    image_id = create(client, who["p1"])
    response = put_stream(client, image_id, Body(b"c" * 60), who["p1"], chunked=True)
    assert response.status_code == 413
    assert "cap" in response.get_json()["message"]
    assert_clean(client, image_id, who["p1"], tmp_path)
    assert used(client, who["p1"]) == (0, 1, 0)


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
@pytest.mark.parametrize("chunked", [False, True])
def test_delete_during_upload_frees_once_keeps_nothing(client, who, tmp_path, chunked):
    kept = create(client, who["p1"])
    assert upload(client, kept, who["p1"], 20).status_code == 204
    image_id = create(client, who["p1"])
    seen = {}

    def delete_meanwhile(n):
        if n == 2:
            seen["during"] = in_thread(lambda: used(client, who["p1"]))
            seen["delete"] = in_thread(lambda: client.delete(f"/v2/images/{image_id}", headers=who["p1"]).status_code)
            seen["after"] = in_thread(lambda: used(client, who["p1"]))

    response = put_stream(client, image_id, Body(b"x" * 50, on_read=delete_meanwhile), who["p1"], chunked=chunked)
    assert response.status_code == 410, response.data
    assert seen["during"] == ((100 if chunked else 70), 2, 1)
    assert seen["delete"] == 204
    assert seen["after"] == (20, 1, 0)
    assert used(client, who["p1"]) == (20, 1, 0)
    assert [f for f in store_files(tmp_path) if image_id in f] == []
    # The freed space is usable exactly once: 80 fit, 81 would not.
    again = create(client, who["p1"])
    assert_413(upload(client, again, who["p1"], 81), "image_size_total")
    assert upload(client, again, who["p1"], 80).status_code == 204
    assert used(client, who["p1"]) == (100, 2, 0)


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_delete_of_active_image_frees_its_bytes(client, who):
    image_id = create(client, who["p1"])
    assert upload(client, image_id, who["p1"], 100).status_code == 204
    assert client.delete(f"/v2/images/{image_id}", headers=who["p1"]).status_code == 204
    assert used(client, who["p1"]) == (0, 0, 0)


# --------------------------------------------------------------------------- concurrent uploads (in-process)


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
@pytest.mark.parametrize("chunked", [False, True])
def test_second_upload_while_first_holds_reservation_is_413(client, who, tmp_path, chunked):
    """60% + 60% of the quota, the second starting while the first streams: one 204, one 413."""
    first, second = create(client, who["p1"]), create(client, who["p1"])
    seen = {}

    def start_second(n):
        if n == 2:
            seen["second"] = in_thread(lambda: upload(client, second, who["p1"], 60, chunked=chunked))

    response = put_stream(client, first, Body(b"f" * 60, on_read=start_second), who["p1"], chunked=chunked)
    assert response.status_code == 204, response.data
    assert_413(seen["second"], "image_size_total")
    assert_clean(client, second, who["p1"], tmp_path)
    assert used(client, who["p1"]) == (60, 2, 0)


@with_env(IMAGEDATA_QUOTA_IMAGE_COUNT_UPLOADING=1)
def test_image_count_uploading(client, who, tmp_path):
    busy, waiting = create(client, who["p1"]), create(client, who["p1"])
    seen = {}

    def upload_other(n):
        if n == 2:
            seen["other"] = in_thread(lambda: upload(client, waiting, who["p1"], 5))
            seen["p2"] = in_thread(lambda: upload(client, create(client, who["p2"]), who["p2"], 5).status_code)

    response = put_stream(client, busy, Body(b"b" * 20, on_read=upload_other), who["p1"])
    assert response.status_code == 204
    assert_413(seen["other"], "image_count_uploading", "limit of 1")
    assert seen["p2"] == 204  # per project
    assert_clean(client, waiting, who["p1"], tmp_path)
    assert upload(client, waiting, who["p1"], 5).status_code == 204
    assert usage(client, who["p1"])["image_count_uploading"] == {"limit": 1, "usage": 0}
