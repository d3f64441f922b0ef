"""Image data through the Flask client: PUT and GET /v2/images/{id}/file.

Every status code of the api-ref (/work/shared/seed/images-data.rst) is produced here:
upload 204; 400, 401, 403, 404, 409, 410, 413, 415, 503 and download 200, 204, 206; 400, 403,
404, 416, plus this service's 304 and 503. The numbered conformance tests of
/work/shared/spec/glance-behavior.md §9 are encoded with our deliberate differences: always
multi-store, 409 for the losing racer, early 413 on a declared size over the cap, strict Range
rules with ETag/Accept-Ranges, 503 for an active image whose data is missing.

After every failing upload the image must be back to ``queued`` with no size, checksum or
hash, and no file for it may remain in any store (``assert_clean``).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from imagedata.db import database
from imagedata.models import Image
from imagedata.policy import Caller
from imagedata.service.images import delete_image
from tests.conftest import store_files
from tests.helpers import Body, OCTET, with_env

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


# --------------------------------------------------------------------------- helpers






def put_stream(client, image_id, stream, headers, content_length=None, chunked=False):
    """PUT a stream object as the body: with ``content_length``, chunked, or with no framing at all."""
    hdrs = dict(headers)
    hdrs.setdefault("Content-Type", OCTET)
    environ = EnvironBuilder(path=f"/v2/images/{image_id}/file", method="PUT", headers=hdrs).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = stream
    if content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
    return client.open(Request(environ))


def files_of(tmp_path, image_id):
    return [path for path in store_files(tmp_path) if image_id in os.path.basename(path)]


def show(client, image_id, headers):
    response = client.get(f"/v2/images/{image_id}", headers=headers)
    assert response.status_code == 200, response.data
    return response.get_json()


def assert_clean(client, image_id, headers, tmp_path):
    """A failed upload left the image queued, without data fields, and no file in any store."""
    image = show(client, image_id, headers)
    assert image["status"] == "queued"
    for field in ("size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value"):
        assert image[field] is None, field
    assert "stores" not in image
    assert files_of(tmp_path, image_id) == []


def get_file(client, image_id, headers, **extra):
    return client.get(f"/v2/images/{image_id}/file", headers={**headers, **extra})


def text_error(response):
    return response.get_data(as_text=True)


@pytest.fixture
def admin(admin_token):
    return {"X-Auth-Token": admin_token}


@pytest.fixture
def other(make_token):
    """A member of project p2."""
    return {"X-Auth-Token": make_token("p2")}


@pytest.fixture
def reader(make_token):
    """A reader-only user of p1, the owner project."""
    return {"X-Auth-Token": make_token("p1", ("reader",))}


@pytest.fixture
def active(new_image, upload):
    """An active raw/bare image of p1 holding the 26 letters of the alphabet."""
    image = new_image()
    assert upload(image["id"], ALPHABET).status_code == 204
    return image["id"]


# --------------------------------------------------------------------------- upload: success


def test_upload_makes_image_active(client, auth, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    response = upload(image_id, b"ZZZZZ")
    assert response.status_code == 204
    assert response.data == b""
    assert response.headers.get("Content-Length") in (None, "0")
    image = show(client, image_id, auth)
    assert image["status"] == "active"
    assert image["size"] == 5
    assert image["virtual_size"] == 5
    assert image["checksum"] == hashlib.md5(b"ZZZZZ").hexdigest()
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(b"ZZZZZ").hexdigest()
    assert image["stores"] == "local"
    [path] = files_of(tmp_path, image_id)
    assert path.startswith(str(tmp_path / "stores" / "local") + os.sep)
    with open(path, "rb") as f:
        assert f.read() == b"ZZZZZ"


def test_upload_content_type_parameters_are_ignored(client, auth, new_image, upload):
    image_id = new_image()["id"]
    response = upload(image_id, b"abc", **{"Content-Type": "application/octet-stream; charset=binary"})
    assert response.status_code == 204
    assert show(client, image_id, auth)["status"] == "active"


def test_upload_with_matching_size_header(client, auth, new_image, upload):
    image_id = new_image()["id"]
    assert upload(image_id, b"abcd", **{"x-openstack-image-size": "4"}).status_code == 204
    assert show(client, image_id, auth)["size"] == 4


def test_upload_chunked_one_mib(client, auth, new_image):
    image_id = new_image()["id"]
    data = os.urandom(1 << 20)
    response = put_stream(client, image_id, Body(data, piece=65536), auth, chunked=True)
    assert response.status_code == 204, response.data
    image = show(client, image_id, auth)
    assert image["size"] == 1048576
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert get_file(client, image_id, auth).data == data


def test_upload_chunked_with_size_header(client, auth, new_image):
    image_id = new_image()["id"]
    response = put_stream(client, image_id, Body(b"abcdef"), {**auth, "x-openstack-image-size": "6"}, chunked=True)
    assert response.status_code == 204
    assert show(client, image_id, auth)["size"] == 6


@pytest.mark.parametrize("how", ["content-length-0", "no-framing"])
def test_upload_empty_body(client, auth, new_image, upload, how):
    image_id = new_image()["id"]
    if how == "content-length-0":
        response = upload(image_id, b"")
    else:
        response = put_stream(client, image_id, Body(b""), auth)
    assert response.status_code == 204, response.data
    image = show(client, image_id, auth)
    assert image["status"] == "active"
    assert image["size"] == 0
    assert image["checksum"] == EMPTY_MD5
    assert image["os_hash_value"] == hashlib.sha512(b"").hexdigest()
    got = get_file(client, image_id, auth)
    assert (got.status_code, got.data, got.headers["Content-Length"]) == (200, b"", "0")


def test_upload_aki_has_no_virtual_size(client, auth, new_image, upload):
    image_id = new_image(disk_format="aki", container_format="aki")["id"]
    assert upload(image_id, os.urandom(100)).status_code == 204
    image = show(client, image_id, auth)
    assert image["status"] == "active"
    assert image["virtual_size"] is None


def test_upload_into_named_store(client, auth, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    assert upload(image_id, b"slow data", **{"X-Image-Meta-Store": "slow"}).status_code == 204
    assert show(client, image_id, auth)["stores"] == "slow"
    [path] = files_of(tmp_path, image_id)
    assert path.startswith(str(tmp_path / "stores" / "slow") + os.sep)
    assert get_file(client, image_id, auth).data == b"slow data"


@with_env(IMAGEDATA_DEFAULT_STORE="slow")
def test_upload_without_store_header_uses_default(client, auth, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    assert upload(image_id, b"d").status_code == 204
    assert show(client, image_id, auth)["stores"] == "slow"
    [path] = files_of(tmp_path, image_id)
    assert path.startswith(str(tmp_path / "stores" / "slow") + os.sep)


def test_admin_uploads_to_any_project(client, admin, auth, new_image, upload):
    image_id = new_image()["id"]
    assert upload(image_id, b"adm", headers=admin).status_code == 204
    assert show(client, image_id, auth)["status"] == "active"


def test_upload_retry_after_failure(client, auth, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    assert upload(image_id, b"abc", **{"x-openstack-image-size": "4"}).status_code == 400
    assert_clean(client, image_id, auth, tmp_path)
    assert upload(image_id, b"abcd").status_code == 204
    assert get_file(client, image_id, auth).data == b"abcd"
    assert len(files_of(tmp_path, image_id)) == 1


# --------------------------------------------------------------------------- upload: failures (table)


def _missing_disk(new_image):
    return new_image(disk_format=None)["id"]


def _missing_both(new_image):
    return new_image(disk_format=None, container_format=None)["id"]


def _raw(new_image):
    return new_image()["id"]


UPLOAD_FAILURES = [
    # (id, image factory, headers, body, status, text in the message)
    ("no-content-type", _raw, {"Content-Type": None}, b"abc", 415,
     "The request has no Content-Type: send image data with Content-Type: application/octet-stream."),
    ("json-content-type", _raw, {"Content-Type": "application/json"}, b"{}", 415,
     "Content-Type 'application/json' is not supported: send image data with Content-Type: "
     "application/octet-stream."),
    ("text-content-type", _raw, {"Content-Type": "text/plain"}, b"abc", 415, "application/octet-stream"),
    ("bad-size-header", _raw, {"x-openstack-image-size": "foobar"}, b"abc", 400,
     "Invalid or missing image size in request headers."),
    ("negative-size-header", _raw, {"x-openstack-image-size": "-3"}, b"abc", 400, None),
    ("size-header-disagrees", _raw, {"x-openstack-image-size": "4"}, b"abc", 400, None),
    ("size-header-disagrees-less", _raw, {"x-openstack-image-size": "2"}, b"abcd", 400, None),
    ("unknown-store", _raw, {"X-Image-Meta-Store": "dummy"}, b"abc", 400,
     "Store for identifier dummy not found. The stores are: local, slow; name one in X-Image-Meta-Store, "
     "or send none for the default (local)."),
    ("empty-store", _raw, {"X-Image-Meta-Store": ""}, b"abc", 400, None),
    ("reserved-store", _raw, {"X-Image-Meta-Store": "os_glance_staging_store"}, b"abc", 400, None),
    ("disk-format-missing", _missing_disk, {}, b"abc", 400,
     "Property disk_format must be set prior to saving data."),
    ("both-formats-missing", _missing_both, {}, b"abc", 400,
     "Properties disk_format, container_format must be set prior to saving data."),
]


@pytest.mark.parametrize("factory, headers, body, status, text",
                         [case[1:] for case in UPLOAD_FAILURES], ids=[case[0] for case in UPLOAD_FAILURES])
def test_upload_failure_leaves_image_queued(client, auth, new_image, tmp_path, factory, headers, body, status,
                                            text):
    image_id = factory(new_image)
    hdrs = {**auth, "Content-Type": OCTET, **headers}
    hdrs = {k: v for k, v in hdrs.items() if v is not None}
    response = client.put(f"/v2/images/{image_id}/file", data=body, headers=hdrs)
    assert response.status_code == status, response.data
    if text:
        assert text in text_error(response)
    assert_clean(client, image_id, auth, tmp_path)


@pytest.mark.parametrize("headers, status", [
    ({"Content-Type": "application/json"}, 415),
    ({"X-Image-Meta-Store": "dummy"}, 400),
    ({"X-Image-Meta-Store": ""}, 400),
    ({"x-openstack-image-size": "foobar"}, 400),
    ({}, 404),
], ids=["415-before-lookup", "bad-store-before-lookup", "empty-store-before-lookup", "bad-size-before-lookup",
        "404"])
def test_upload_to_random_id(client, auth, tmp_path, headers, status):
    response = client.put(f"/v2/images/{uuid.uuid4()}/file", data=b"abc",
                          headers={**auth, "Content-Type": OCTET, **headers})
    assert response.status_code == status
    assert store_files(tmp_path) == []


def test_upload_auth_is_checked_before_content_type(client, new_image):
    image_id = new_image()["id"]
    response = client.put(f"/v2/images/{image_id}/file", data=b"abc", headers={"Content-Type": "text/plain"})
    assert response.status_code == 401


@pytest.mark.parametrize("image_id", ["x" * 40, "a" * 36, "not-an-id"])
def test_upload_to_malformed_id_is_404(client, auth, image_id):
    response = client.put(f"/v2/images/{image_id}/file", data=b"abc", headers={**auth, "Content-Type": OCTET})
    assert response.status_code == 404


def assert_kept(client, image_id, headers, kept, total, tmp_path):
    """A cut-off upload: the image is queued without data, what arrived is kept for a resume."""
    image = show(client, image_id, headers)
    assert (image["status"], image["size"], image["checksum"]) == ("queued", None, None)
    head = client.head(f"/v2/images/{image_id}/file", headers=headers)
    assert head.status_code == 204
    assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (str(kept), str(total))
    assert [os.path.basename(p)[-5:] for p in files_of(tmp_path, image_id)] == [".part"]


def test_upload_short_body_is_400_and_kept(client, auth, new_image, tmp_path):
    """Declared Content-Length 10, the client sends 3 bytes and stops."""
    image_id = new_image()["id"]
    response = put_stream(client, image_id, Body(b"abc"), auth, content_length=10)
    assert response.status_code == 400
    assert_kept(client, image_id, auth, 3, 10, tmp_path)


@with_env(IMAGEDATA_RESUME_SECONDS=0)
def test_upload_short_body_with_resume_off_is_400_and_clean(client, auth, new_image, tmp_path):
    image_id = new_image()["id"]
    response = put_stream(client, image_id, Body(b"abc"), auth, content_length=10)
    assert response.status_code == 400
    assert_clean(client, image_id, auth, tmp_path)
    assert "Upload-Offset" not in client.head(f"/v2/images/{image_id}/file", headers=auth).headers


def test_upload_chunked_size_mismatch_is_400(client, auth, new_image, tmp_path):
    image_id = new_image()["id"]
    response = put_stream(client, image_id, Body(b"abc"), {**auth, "x-openstack-image-size": "4"}, chunked=True)
    assert response.status_code == 400
    assert "Size mismatch: expected 4 bytes, got 3 bytes" in text_error(response)
    assert_clean(client, image_id, auth, tmp_path)


def test_upload_chunked_size_exceeded_is_400(client, auth, new_image, tmp_path):
    image_id = new_image()["id"]
    response = put_stream(client, image_id, Body(b"abcd", piece=1), {**auth, "x-openstack-image-size": "2"},
                          chunked=True)
    assert response.status_code == 400
    assert "Size exceeds" in text_error(response)
    assert_clean(client, image_id, auth, tmp_path)


def test_upload_broken_body_is_400(client, auth, new_image, tmp_path):
    """The connection breaks mid-body (the read raises)."""
    image_id = new_image()["id"]

    def explode(n):
        if n == 2:
            raise ConnectionResetError("peer went away")

    response = put_stream(client, image_id, Body(b"abcdefgh", on_read=explode), auth, content_length=8)
    assert response.status_code == 400
    assert_kept(client, image_id, auth, 4, 8, tmp_path)


def test_upload_content_length_with_chunked_is_400(client, auth, new_image, tmp_path):
    image_id = new_image()["id"]
    response = put_stream(client, image_id, Body(b"abc"), auth, content_length=3, chunked=True)
    assert response.status_code == 400
    assert_clean(client, image_id, auth, tmp_path)


def test_upload_unterminated_chunked_is_411(client, auth, new_image, tmp_path):
    """A chunked body the WSGI server does not terminate cannot be read safely."""
    image_id = new_image()["id"]
    hdrs = {**auth, "Content-Type": OCTET}
    environ = EnvironBuilder(path=f"/v2/images/{image_id}/file", method="PUT", headers=hdrs).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input"] = Body(b"abc")
    response = client.open(Request(environ))
    assert response.status_code == 411
    assert_clean(client, image_id, auth, tmp_path)


# --------------------------------------------------------------------------- upload: 401 / 403 / 404


@pytest.mark.parametrize("bad_token", [None, "", "idt_unknown", "garbage"])
def test_upload_without_valid_token_is_401(client, new_image, auth, tmp_path, bad_token):
    image_id = new_image()["id"]
    headers = {"Content-Type": OCTET}
    if bad_token is not None:
        headers["X-Auth-Token"] = bad_token
    response = client.put(f"/v2/images/{image_id}/file", data=b"abc", headers=headers)
    assert response.status_code == 401
    assert_clean(client, image_id, auth, tmp_path)


def test_upload_with_expired_or_revoked_token_is_401(client, app, make_token, new_image, auth, tmp_path):
    from imagedata.models import Token
    from imagedata.service.tokens import hash_token

    image_id = new_image()["id"]
    expired = make_token("p1", expires_in=-5)
    revoked = make_token("p1")
    with database.connection_context():
        Token.update(revoked=True).where(Token.token_hash == hash_token(revoked)).execute()
    for token in (expired, revoked):
        response = client.put(f"/v2/images/{image_id}/file", data=b"abc",
                              headers={"X-Auth-Token": token, "Content-Type": OCTET})
        assert response.status_code == 401
    assert_clean(client, image_id, auth, tmp_path)


def test_upload_by_reader_owner_is_403(client, auth, reader, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    assert upload(image_id, b"abc", headers=reader).status_code == 403
    assert_clean(client, image_id, auth, tmp_path)


@pytest.mark.parametrize("visibility, status", [("private", 404), ("shared", 404), ("public", 403),
                                                ("community", 403)])
def test_upload_to_other_projects_image(client, admin, other, new_image, upload, tmp_path, visibility, status):
    """An image of project 'ops' (created by an admin, as public needs one) uploaded to by p2."""
    image_id = new_image(headers=admin, visibility=visibility)["id"]
    assert upload(image_id, b"abc", headers=other).status_code == status
    assert_clean(client, image_id, admin, tmp_path)


def test_upload_by_member_of_shared_image_is_403(client, auth, other, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    assert client.post(f"/v2/images/{image_id}/members", json={"member": "p2"}, headers=auth).status_code == 200
    assert upload(image_id, b"abc", headers=other).status_code == 403
    assert_clean(client, image_id, auth, tmp_path)


@with_env(IMAGEDATA_POLICY="upload_image=false; get_image=true")
def test_upload_denied_by_policy_is_403(client, auth, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    assert upload(image_id, b"abc").status_code == 403
    assert_clean(client, image_id, auth, tmp_path)


@with_env(IMAGEDATA_POLICY="upload_image=false; get_image=admin")
def test_upload_denied_and_invisible_by_policy_is_404(client, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    assert upload(image_id, b"abc").status_code == 404
    with database.connection_context():
        row = Image.get_by_id(image_id)
        assert (row.status, row.size, row.checksum, row.attempt_store) == ("queued", None, None, None)
    assert files_of(tmp_path, image_id) == []


@with_env(IMAGEDATA_DATA_ADMIN_ONLY="true")
def test_data_admin_only(client, auth, admin, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    assert upload(image_id, b"abc").status_code == 403
    assert_clean(client, image_id, auth, tmp_path)
    assert upload(image_id, b"abc", headers=admin).status_code == 204
    assert get_file(client, image_id, auth).status_code == 403
    assert get_file(client, image_id, admin).data == b"abc"


# --------------------------------------------------------------------------- upload: 409 / 410


def test_upload_to_active_image_is_409(client, auth, active, upload, tmp_path):
    before = show(client, active, auth)
    assert upload(active, b"XXX").status_code == 409
    assert show(client, active, auth) == before
    assert get_file(client, active, auth).data == ALPHABET
    assert len(files_of(tmp_path, active)) == 1


def test_upload_to_deactivated_image_is_409(client, auth, active, upload):
    assert client.post(f"/v2/images/{active}/actions/deactivate", headers=auth).status_code == 204
    assert upload(active, b"XXX").status_code == 409
    assert show(client, active, auth)["status"] == "deactivated"


def test_upload_to_saving_image_is_409(client, app, auth, new_image, tmp_path):
    """A second PUT while the first one streams (the image is `saving`) is refused."""
    image_id = new_image()["id"]
    seen = {}

    def second_upload(n):
        if n == 2:
            inner = app.test_client()
            during = inner.get(f"/v2/images/{image_id}", headers=auth).get_json()
            seen["during"] = (during["status"], "stores" in during, during["size"])
            seen["status"] = inner.put(f"/v2/images/{image_id}/file", data=b"other",
                                       headers={**auth, "Content-Type": OCTET}).status_code

    response = put_stream(client, image_id, Body(b"first upload", on_read=second_upload), auth,
                          content_length=12)
    assert seen == {"during": ("saving", False, None), "status": 409}
    assert response.status_code == 204
    assert get_file(client, image_id, auth).data == b"first upload"
    assert len(files_of(tmp_path, image_id)) == 1


def test_concurrent_uploads_one_wins(app, auth, new_image, tmp_path):
    """Two parallel PUTs on one queued image: exactly one 204, the loser 409; winner's data kept."""
    image_id = new_image()["id"]
    started, release = threading.Event(), threading.Event()
    results = {}

    def hold(n):
        if n == 2:
            started.set()
            release.wait(10)

    def first():
        results["A"] = put_stream(app.test_client(), image_id, Body(b"winner data", on_read=hold), auth,
                                  content_length=11).status_code

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert started.wait(10)
        results["B"] = app.test_client().put(f"/v2/images/{image_id}/file", data=b"loser",
                                             headers={**auth, "Content-Type": OCTET}).status_code
    finally:
        release.set()
        thread.join(10)
    assert sorted(results.values()) == [204, 409]
    assert results == {"A": 204, "B": 409}
    client = app.test_client()
    image = show(client, image_id, auth)
    assert image["status"] == "active"
    assert image["checksum"] == hashlib.md5(b"winner data").hexdigest()
    assert get_file(client, image_id, auth).data == b"winner data"
    assert len(files_of(tmp_path, image_id)) == 1


def test_upload_deleted_meanwhile_is_410(client, app, auth, new_image, tmp_path):
    """DELETE from another request while the body streams: DELETE 204, the uploader 410, nothing left."""
    image_id = new_image()["id"]
    seen = {}

    def delete_meanwhile(n):
        if n == 2:
            seen["delete"] = app.test_client().delete(f"/v2/images/{image_id}", headers=auth).status_code

    response = put_stream(client, image_id, Body(b"0123456789abcdef", on_read=delete_meanwhile), auth,
                          content_length=16)
    assert seen == {"delete": 204}
    assert response.status_code == 410
    assert client.get(f"/v2/images/{image_id}", headers=auth).status_code == 404
    assert get_file(client, image_id, auth).status_code == 404
    assert store_files(tmp_path) == []


def test_upload_deleted_via_service_layer_is_410(client, app, auth, new_image, tmp_path):
    image_id = new_image()["id"]
    svc = app.extensions["imagedata"]

    def delete_meanwhile(n):
        if n == 3:
            delete_image(svc, Caller.with_roles("u", "p1", ["member"]), image_id)

    response = put_stream(client, image_id, Body(b"x" * 40, on_read=delete_meanwhile), auth, chunked=True)
    assert response.status_code == 410
    assert client.get(f"/v2/images/{image_id}", headers=auth).status_code == 404
    assert store_files(tmp_path) == []


# --------------------------------------------------------------------------- upload: 413


@with_env(IMAGEDATA_IMAGE_SIZE_CAP=128)
def test_upload_exactly_the_cap(client, auth, new_image, upload):
    image_id = new_image()["id"]
    assert upload(image_id, b"c" * 128).status_code == 204
    assert show(client, image_id, auth)["size"] == 128


@with_env(IMAGEDATA_IMAGE_SIZE_CAP=128)
@pytest.mark.parametrize("framing", ["content-length", "size-header-chunked", "both"])
def test_upload_declared_over_cap_is_413_before_reading(client, auth, new_image, tmp_path, framing):
    image_id = new_image()["id"]
    body = Body(b"c" * 129)
    headers = dict(auth)
    if framing == "content-length":
        response = put_stream(client, image_id, body, headers, content_length=129)
    elif framing == "size-header-chunked":
        headers["x-openstack-image-size"] = "129"
        response = put_stream(client, image_id, body, headers, chunked=True)
    else:
        headers["x-openstack-image-size"] = "129"
        response = put_stream(client, image_id, body, headers, content_length=129)
    assert response.status_code == 413
    assert body.reads == 0
    assert "128" in text_error(response)
    assert_clean(client, image_id, auth, tmp_path)


@with_env(IMAGEDATA_IMAGE_SIZE_CAP=128)
def test_upload_chunked_over_cap_is_413(client, auth, new_image, tmp_path):
    image_id = new_image(disk_format="aki", container_format="aki")["id"]
    data = os.urandom(129)
    response = put_stream(client, image_id, Body(data, piece=32), auth, chunked=True)
    assert response.status_code == 413
    assert_clean(client, image_id, auth, tmp_path)
    assert show(client, image_id, auth)["checksum"] != hashlib.md5(data).hexdigest()


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
@pytest.mark.parametrize("size, chunked, status", [(99, False, 204), (100, False, 204), (101, False, 413),
                                                   (99, True, 204), (101, True, 413)])
def test_upload_storage_quota(client, auth, new_image, tmp_path, size, chunked, status):
    image_id = new_image()["id"]
    body = Body(b"q" * size, piece=16)
    if chunked:
        response = put_stream(client, image_id, body, auth, chunked=True)
    else:
        response = put_stream(client, image_id, body, auth, content_length=size)
    assert response.status_code == status
    if status == 413:
        assert_clean(client, image_id, auth, tmp_path)
        if not chunked:
            assert body.reads == 0
    else:
        assert show(client, image_id, auth)["size"] == size


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=100)
def test_upload_storage_quota_counts_stored_images(client, auth, new_image, upload, tmp_path):
    first, second = new_image()["id"], new_image()["id"]
    assert upload(first, b"s" * 60).status_code == 204
    body = Body(b"t" * 50)
    response = put_stream(client, second, body, auth, content_length=50)
    assert response.status_code == 413
    assert body.reads == 0
    assert "current usage 60 and delta 50" in text_error(response)
    assert_clean(client, second, auth, tmp_path)
    chunked = put_stream(client, second, Body(b"t" * 50), auth, chunked=True)
    assert chunked.status_code == 413
    assert_clean(client, second, auth, tmp_path)
    assert upload(second, b"t" * 40).status_code == 204
    usage = client.get("/v2/info/usage", headers=auth).get_json()["usage"]
    assert usage["image_size_total"] == {"limit": 100, "usage": 100}
    assert usage["image_count_uploading"]["usage"] == 0


@with_env(IMAGEDATA_QUOTA_IMAGE_COUNT_UPLOADING=1)
def test_upload_count_quota_is_413(client, app, auth, new_image, tmp_path):
    busy, waiting = new_image()["id"], new_image()["id"]
    seen = {}

    def upload_other(n):
        if n == 2:
            seen["status"] = app.test_client().put(f"/v2/images/{waiting}/file", data=b"w",
                                                   headers={**auth, "Content-Type": OCTET}).status_code

    response = put_stream(client, busy, Body(b"busy image", on_read=upload_other), auth, content_length=10)
    assert seen == {"status": 413}
    assert response.status_code == 204
    assert_clean(client, waiting, auth, tmp_path)


@with_env(IMAGEDATA_QUOTA_IMAGE_COUNT_TOTAL=2)
def test_create_over_image_count_quota_is_413(client, auth, new_image):
    new_image()
    new_image()
    assert client.post("/v2/images", json={}, headers=auth).status_code == 413


# --------------------------------------------------------------------------- upload: 503


def test_upload_to_missing_store_is_503(client, auth, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    shutil.rmtree(tmp_path / "stores" / "local")
    response = upload(image_id, b"abc")
    assert response.status_code == 503
    assert_clean(client, image_id, auth, tmp_path)


def test_upload_to_missing_named_store_is_503(client, auth, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    shutil.rmtree(tmp_path / "stores" / "slow")
    assert upload(image_id, b"abc", **{"X-Image-Meta-Store": "slow"}).status_code == 503
    assert_clean(client, image_id, auth, tmp_path)
    assert upload(image_id, b"abc").status_code == 204  # the default store still works


def test_upload_when_store_root_is_not_a_directory_is_503(client, auth, new_image, upload, tmp_path):
    image_id = new_image()["id"]
    root = tmp_path / "stores" / "local"
    shutil.rmtree(root)
    root.write_bytes(b"not a directory")
    assert upload(image_id, b"abc").status_code == 503
    root.unlink()
    assert_clean(client, image_id, auth, tmp_path)


# --------------------------------------------------------------------------- upload: routing


@pytest.mark.parametrize("method", ["POST", "DELETE", "PATCH"])
def test_other_methods_on_file_are_405(client, auth, active, method):
    response = client.open(f"/v2/images/{active}/file", method=method, headers=auth)
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "PUT"} <= allowed
    assert method not in allowed


# --------------------------------------------------------------------------- download: full


def test_download_queued_image_is_204(client, auth, new_image):
    image_id = new_image()["id"]
    response = get_file(client, image_id, auth)
    assert response.status_code == 204
    assert response.data == b""


def test_download_queued_image_with_range_is_204(client, auth, new_image):
    image_id = new_image()["id"]
    response = get_file(client, image_id, auth, Range="bytes=0-3")
    assert response.status_code == 204
    assert response.data == b""


def test_download_full(client, auth, active):
    response = get_file(client, active, auth)
    assert response.status_code == 200
    assert response.data == ALPHABET
    assert response.headers["Content-Type"] == OCTET
    assert response.headers["Content-Length"] == "26"
    assert response.headers["Content-MD5"] == hashlib.md5(ALPHABET).hexdigest()
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"] == f'"{hashlib.sha512(ALPHABET).hexdigest()}"'
    assert "Content-Range" not in response.headers


def test_download_etag_is_os_hash_value(client, auth, active):
    image = show(client, active, auth)
    assert get_file(client, active, auth).headers["ETag"] == f'"{image["os_hash_value"]}"'


def test_head_file_has_get_headers_without_body(client, auth, active):
    got = get_file(client, active, auth)
    head = client.head(f"/v2/images/{active}/file", headers=auth)
    assert head.status_code == 200
    assert head.data == b""
    for name in ("Content-Type", "Content-Length", "Content-MD5", "ETag", "Accept-Ranges"):
        assert head.headers.get(name) == got.headers.get(name), name


def test_head_file_with_range(client, auth, active):
    head = client.head(f"/v2/images/{active}/file", headers={**auth, "Range": "bytes=3-10"})
    assert head.status_code == 206
    assert head.data == b""
    assert head.headers["Content-Range"] == "bytes 3-10/26"
    assert head.headers["Content-Length"] == "8"


def test_download_with_body_is_400(client, auth, active):
    response = client.get(f"/v2/images/{active}/file", data=b'{"a": 1}', headers=auth,
                          content_type="application/json")
    assert response.status_code == 400
    assert "A body is not expected with this request." in text_error(response)


@pytest.mark.parametrize("image_id", [str(uuid.uuid4()), "x" * 40, "nope"])
def test_download_unknown_is_404(client, auth, image_id):
    assert get_file(client, image_id, auth).status_code == 404


def test_download_without_token_is_401(client, active):
    assert client.get(f"/v2/images/{active}/file").status_code == 401
    assert client.get(f"/v2/images/{active}/file", headers={"X-Auth-Token": "idt_x"}).status_code == 401


def test_download_zero_byte_image(client, auth, new_image, upload):
    image_id = new_image()["id"]
    assert upload(image_id, b"").status_code == 204
    full = get_file(client, image_id, auth)
    assert (full.status_code, full.data, full.headers["Content-Length"]) == (200, b"", "0")
    ranged = get_file(client, image_id, auth, Range="bytes=0-")
    assert ranged.status_code == 416
    assert ranged.headers["Content-Range"] == "bytes */0"


# --------------------------------------------------------------------------- download: ranges (table)

RANGES = [
    # (Range, Content-Range (legacy request header), status, body, Content-Range answered)
    ("bytes=3-10", None, 206, b"DEFGHIJK", "bytes 3-10/26"),
    ("bytes=0-0", None, 206, b"A", "bytes 0-0/26"),
    ("bytes=25-25", None, 206, b"Z", "bytes 25-25/26"),
    ("bytes=-2", None, 206, b"YZ", "bytes 24-25/26"),
    ("bytes=-26", None, 206, ALPHABET, "bytes 0-25/26"),
    ("bytes=-100", None, 206, ALPHABET, "bytes 0-25/26"),
    ("bytes=0-", None, 206, ALPHABET, "bytes 0-25/26"),
    ("bytes=24-", None, 206, b"YZ", "bytes 24-25/26"),
    ("bytes=1-100", None, 206, ALPHABET[1:], "bytes 1-25/26"),
    ("bytes=0-25", None, 206, ALPHABET, "bytes 0-25/26"),
    ("bytes=10-5", None, 416, None, None),
    ("bytes=26-", None, 416, None, None),
    ("bytes=26-30", None, 416, None, None),
    ("bytes=100-", None, 416, None, None),
    ("bytes=5", None, 416, None, None),
    ("bytes=", None, 416, None, None),
    ("bytes=-", None, 416, None, None),
    ("bytes=-0", None, 416, None, None),
    ("items=0-1", None, 416, None, None),
    ("garbage", None, 416, None, None),
    ("bytes=0-0,-1", None, 400, None, None),
    ("bytes=0-1,5-6", None, 400, None, None),
    (None, "bytes 1-2/26", 206, b"BC", "bytes 1-2/26"),
    (None, "bytes 1-2/*", 206, b"BC", "bytes 1-2/26"),
    (None, "bytes 25-25/26", 206, b"Z", "bytes 25-25/26"),
    (None, "bytes 20-30/40", 206, b"UVWXYZ", "bytes 20-25/26"),
    (None, "bytes 3-16/15", 416, None, None),
    (None, "bytes 20-30/*", 416, None, None),
    (None, "bytes 26-27/*", 416, None, None),
    (None, "bytes 4-1/26", 416, None, None),
    (None, "bytes */26", 416, None, None),
    (None, "bytes 1-/26", 416, None, None),
    (None, "garbage", 416, None, None),
    ("bytes=0-0", "bytes 1-1/26", 206, b"A", "bytes 0-0/26"),
]


@pytest.mark.parametrize("range_, content_range, status, body, answered", RANGES,
                         ids=[f"{r}|{c}" for r, c, *_ in RANGES])
def test_download_range(client, auth, active, range_, content_range, status, body, answered):
    headers = {}
    if range_ is not None:
        headers["Range"] = range_
    if content_range is not None:
        headers["Content-Range"] = content_range
    response = get_file(client, active, auth, **headers)
    assert response.status_code == status, response.data
    if status == 206:
        assert response.data == body
        assert response.headers["Content-Range"] == answered
        assert response.headers["Content-Length"] == str(len(body))
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["ETag"] == f'"{hashlib.sha512(ALPHABET).hexdigest()}"'
        assert response.headers["Content-MD5"] == hashlib.md5(ALPHABET).hexdigest()  # whole image
        assert response.headers["Content-Type"] == OCTET
    elif status == 416:
        assert response.headers["Content-Range"] == "bytes */26"
        assert not response.get_data(as_text=True).startswith("<")
    else:
        assert "multiple ranges" in text_error(response)


XYZ_RANGES = [
    # Glance's unit-test pins for the 3-byte image "XYZ" (spec §5.2 and §5.3), Range then legacy Content-Range
    *[("Range", f"bytes={r}", 206, b"YZ", "bytes 1-2/3") for r in ("1-2", "1-", "1-3", "-2", "1-100")],
    *[("Range", f"bytes={r}", 206, b"XYZ", "bytes 0-2/3") for r in ("0-", "0-2", "0-3", "-3", "-4", "0-100",
                                                                      "-100")],
    *[("Range", f"bytes={r}", 416, None, None) for r in ("4-1", "4-", "3-", "1", "100", "100-", "")],
    ("Range", "bytes=0-0,-1", 400, None, None),
    ("Content-Range", "bytes 1-2/3", 206, b"YZ", "bytes 1-2/3"),
    ("Content-Range", "bytes 1-2/*", 206, b"YZ", "bytes 1-2/3"),
    *[("Content-Range", f"bytes {r}", 416, None, None) for r in ("-3/3", "1-/3", "1-3/3", "1-4/3", "1-4/*",
                                                                 "4-1/3", "4-1/*", "4-8/*", "4-8/10", "4-8/3")],
]


@pytest.mark.parametrize("header, value, status, body, answered", XYZ_RANGES,
                         ids=[f"{h}:{v}" for h, v, *_ in XYZ_RANGES])
def test_download_range_of_three_bytes(client, auth, new_image, upload, header, value, status, body, answered):
    image_id = new_image()["id"]
    assert upload(image_id, b"XYZ").status_code == 204
    response = get_file(client, image_id, auth, **{header: value})
    assert response.status_code == status
    if status == 206:
        assert response.data == body
        assert response.headers["Content-Range"] == answered
        assert response.headers["Content-Length"] == str(len(body))
    elif status == 416:
        assert response.headers["Content-Range"] == "bytes */3"


def test_download_range_reads_one_byte_at_a_time(client, auth, new_image, upload):
    data = b"0123456789abcde"
    image_id = new_image()["id"]
    assert upload(image_id, data).status_code == 204
    got = b"".join(get_file(client, image_id, auth, **{"Content-Range": f"bytes {i}-{i}/15"}).data
                   for i in range(15))
    assert got == data


def test_if_range_matching_etag_gives_206(client, auth, active):
    etag = get_file(client, active, auth).headers["ETag"]
    response = get_file(client, active, auth, Range="bytes=0-1", **{"If-Range": etag})
    assert (response.status_code, response.data) == (206, b"AB")


def test_if_range_wrong_etag_gives_full_200(client, auth, active):
    response = get_file(client, active, auth, Range="bytes=0-1", **{"If-Range": '"not-the-etag"'})
    assert response.status_code == 200
    assert response.data == ALPHABET
    assert "Content-Range" not in response.headers


@pytest.mark.parametrize("value, status", [("{etag}", 304), ("*", 304), ('"other", {etag}', 304),
                                           ("W/{etag}", 304), ('"other"', 200)])
def test_if_none_match(client, auth, active, value, status):
    etag = get_file(client, active, auth).headers["ETag"]
    response = get_file(client, active, auth, **{"If-None-Match": value.format(etag=etag)})
    assert response.status_code == status
    if status == 304:
        assert response.data == b""
        assert response.headers["ETag"] == etag
    else:
        assert response.data == ALPHABET


@pytest.mark.parametrize("query, status", [("prefer=slow,local", 200), ("prefer=local", 200),
                                           ("prefer=slow", 200), ("prefer=,,", 200), ("prefer=nope", 400),
                                           ("prefer=local,nope", 400)])
def test_download_prefer_stores(client, auth, new_image, upload, query, status):
    """Conformance test 74 (multi-store): preferred stores first, any other location as fallback."""
    image_id = new_image()["id"]
    assert upload(image_id, b"pref", **{"X-Image-Meta-Store": "slow"}).status_code == 204
    response = client.get(f"/v2/images/{image_id}/file?{query}", headers=auth)
    assert response.status_code == status
    if status == 200:
        assert response.data == b"pref"


# --------------------------------------------------------------------------- download: 503


def test_download_missing_data_file_is_503(client, auth, active, tmp_path):
    for path in files_of(tmp_path, active):
        os.unlink(path)
    response = get_file(client, active, auth)
    assert response.status_code == 503
    assert response.data != ALPHABET
    ranged = get_file(client, active, auth, Range="bytes=0-1")
    assert ranged.status_code == 503


@pytest.mark.parametrize("accept, mimetype", [("application/json", "application/json"), (None, "text/plain")])
def test_download_503_error_body(client, auth, active, tmp_path, accept, mimetype):
    for path in files_of(tmp_path, active):
        os.unlink(path)
    response = get_file(client, active, auth, **({"Accept": accept} if accept else {}))
    assert response.status_code == 503
    assert response.mimetype == mimetype
    if accept:
        assert response.get_json()["code"] == "503 Service Unavailable"
    else:
        assert response.get_data(as_text=True).startswith("503 Service Unavailable")
    assert str(tmp_path) not in response.get_data(as_text=True)  # no server paths leak


def test_download_truncated_data_file_is_503(client, auth, active, tmp_path):
    [path] = files_of(tmp_path, active)
    with open(path, "r+b") as f:
        f.truncate(10)
    assert get_file(client, active, auth).status_code == 503


def test_download_from_missing_store_is_503(client, auth, active, tmp_path):
    shutil.rmtree(tmp_path / "stores" / "local")
    assert get_file(client, active, auth).status_code == 503


# --------------------------------------------------------------------------- who may download


def test_download_by_reader_owner_is_403(client, reader, active):
    assert client.get(f"/v2/images/{active}", headers=reader).status_code == 200
    assert get_file(client, active, reader).status_code == 403


def test_download_by_user_without_roles_is_404(client, make_token, active):
    roleless = {"X-Auth-Token": make_token("p1", ())}
    assert client.get(f"/v2/images/{active}", headers=roleless).status_code == 404
    assert get_file(client, active, roleless).status_code == 404


def test_download_other_projects_shared_image_is_404(client, other, active):
    assert get_file(client, active, other).status_code == 404
    assert client.get(f"/v2/images/{active}", headers=other).status_code == 404


@pytest.mark.parametrize("visibility, status", [("private", 404), ("shared", 404), ("public", 200),
                                                ("community", 200)])
def test_download_by_visibility(client, admin, other, new_image, upload, visibility, status):
    image_id = new_image(headers=admin, visibility=visibility)["id"]
    assert upload(image_id, b"pub", headers=admin).status_code == 204
    response = get_file(client, image_id, other)
    assert response.status_code == status
    if status == 200:
        assert response.data == b"pub"


def test_public_image_downloadable_but_not_uploadable_by_others(client, admin, auth, other, new_image, upload,
                                                                tmp_path):
    public = new_image(headers=admin, visibility="public", owner="p1")["id"]
    assert upload(public, b"pub", headers=auth).status_code == 204
    assert get_file(client, public, other).data == b"pub"
    queued = new_image(headers=admin, visibility="public", owner="p1")["id"]
    assert upload(queued, b"nope", headers=other).status_code == 403
    assert_clean(client, queued, auth, tmp_path)


def test_pending_member_downloads_but_does_not_list(client, auth, other, active):
    assert client.post(f"/v2/images/{active}/members", json={"member": "p2"}, headers=auth).status_code == 200
    assert get_file(client, active, other).data == ALPHABET
    listed = [image["id"] for image in client.get("/v2/images", headers=other).get_json()["images"]]
    assert active not in listed
    answer = client.put(f"/v2/images/{active}/members/p2", json={"status": "accepted"}, headers=other)
    assert answer.status_code == 200
    listed = [image["id"] for image in client.get("/v2/images", headers=other).get_json()["images"]]
    assert active in listed


def test_community_image_downloadable_listed_only_on_request(client, auth, other, new_image, upload):
    image_id = new_image(visibility="community")["id"]
    assert upload(image_id, b"comm").status_code == 204
    assert get_file(client, image_id, other).data == b"comm"
    default = [image["id"] for image in client.get("/v2/images", headers=other).get_json()["images"]]
    assert image_id not in default
    community = client.get("/v2/images?visibility=community", headers=other).get_json()["images"]
    assert [image["id"] for image in community] == [image_id]


@with_env(IMAGEDATA_POLICY="download_image=false; get_image=true")
def test_download_denied_by_policy_is_403(client, auth, active):
    assert get_file(client, active, auth).status_code == 403


@with_env(IMAGEDATA_POLICY="download_image=false; get_image=admin")
def test_download_denied_and_invisible_by_policy_is_404(client, auth, active):
    assert get_file(client, active, auth).status_code == 404


# --------------------------------------------------------------------------- deactivate / reactivate


def test_deactivate_blocks_download_for_non_admins(client, auth, admin, other, new_image, upload):
    image_id = new_image(visibility="community")["id"]
    assert upload(image_id, b"data").status_code == 204
    response = client.post(f"/v2/images/{image_id}/actions/deactivate", headers=auth)
    assert response.status_code == 204 and response.data == b""
    image = show(client, image_id, auth)
    assert image["status"] == "deactivated"
    assert image["stores"] == "local"
    denied = get_file(client, image_id, auth)
    assert denied.status_code == 403
    assert "deactivated" in text_error(denied)
    assert get_file(client, image_id, other).status_code == 403
    assert get_file(client, image_id, auth, Range="bytes=0-0").status_code == 403
    got = get_file(client, image_id, admin)
    assert (got.status_code, got.data) == (200, b"data")
    # deactivating again is a no-op
    assert client.post(f"/v2/images/{image_id}/actions/deactivate", headers=auth).status_code == 204


def test_reactivate_restores_download(client, auth, active):
    assert client.post(f"/v2/images/{active}/actions/deactivate", headers=auth).status_code == 204
    assert client.post(f"/v2/images/{active}/actions/reactivate", headers=auth).status_code == 204
    assert show(client, active, auth)["status"] == "active"
    assert get_file(client, active, auth).data == ALPHABET
    assert client.post(f"/v2/images/{active}/actions/reactivate", headers=auth).status_code == 204


@pytest.mark.parametrize("action", ["deactivate", "reactivate"])
def test_actions_on_queued_image_are_403(client, auth, new_image, action):
    image_id = new_image()["id"]
    assert client.post(f"/v2/images/{image_id}/actions/{action}", headers=auth).status_code == 403
    assert show(client, image_id, auth)["status"] == "queued"


@pytest.mark.parametrize("visibility, status", [("private", 404), ("public", 403)])
def test_deactivate_by_other_project(client, admin, other, new_image, upload, visibility, status):
    image_id = new_image(headers=admin, owner="p1", visibility=visibility)["id"]
    assert upload(image_id, b"d", headers=admin).status_code == 204
    assert client.post(f"/v2/images/{image_id}/actions/deactivate", headers=other).status_code == status
    assert show(client, image_id, admin)["status"] == "active"


def test_deactivate_by_reader_owner_is_403(client, reader, active):
    assert client.post(f"/v2/images/{active}/actions/deactivate", headers=reader).status_code == 403


def test_deactivate_with_body_is_400(client, auth, active):
    response = client.post(f"/v2/images/{active}/actions/deactivate", data=b"{}", headers=auth,
                           content_type="application/json")
    assert response.status_code == 400


def test_capitalised_admin_role_downloads_deactivated(client, auth, make_token, active):
    assert client.post(f"/v2/images/{active}/actions/deactivate", headers=auth).status_code == 204
    capital_admin = {"X-Auth-Token": make_token("ops", ("Admin",))}
    assert get_file(client, active, capital_admin).data == ALPHABET


# --------------------------------------------------------------------------- trusted-headers auth mode


@with_env(IMAGEDATA_AUTH="trusted-headers")
def test_trusted_headers_need_confirmed_identity(client):
    identity = {"X-Project-Id": "p1", "X-User-Id": "u1", "X-Roles": "reader,member"}
    created = client.post("/v2/images", json={"disk_format": "raw", "container_format": "bare"},
                          headers={**identity, "X-Identity-Status": "Confirmed"})
    assert created.status_code == 201
    image_id = created.get_json()["id"]
    assert client.put(f"/v2/images/{image_id}/file", data=b"abc",
                      headers={**identity, "Content-Type": OCTET}).status_code == 401
    assert client.get(f"/v2/images/{image_id}/file", headers=identity).status_code == 401
    confirmed = {**identity, "X-Identity-Status": "Confirmed"}
    assert client.put(f"/v2/images/{image_id}/file", data=b"abc",
                      headers={**confirmed, "Content-Type": OCTET}).status_code == 204
    assert client.post(f"/v2/images/{image_id}/actions/deactivate", headers=confirmed).status_code == 204
    assert client.get(f"/v2/images/{image_id}/file", headers=confirmed).status_code == 403
    capital_admin = {"X-Identity-Status": "Confirmed", "X-Project-Id": "ops", "X-Roles": "Admin"}
    assert client.get(f"/v2/images/{image_id}/file", headers=capital_admin).data == b"abc"
