"""Errors that say what to do: every message a newcomer met, pinned word for word.

Each answer keeps Glance's shape (flat JSON for clients that ask, short text otherwise) and
its status; the message names the fix. docs/api.rst lists them.
"""
from __future__ import annotations

import datetime
import json
import logging
import shutil
import subprocess
import time

import pytest

from imagedata.db import database
from imagedata.models import Image, Token
from tests.helpers import OCTET, Body, skip_or_fail, with_env
from tests.test_api_data import put_stream

JSON = {"Accept": "application/json"}
DATA = bytes(range(256)) * 40  # 10240 bytes
PATCH_TYPES = ("application/openstack-images-v2.1-json-patch", "application/openstack-images-v2.0-json-patch")


@pytest.fixture
def logged(app, caplog):
    """caplog, seeing the service's own logger at INFO (it does not propagate to the root)."""
    logger = logging.getLogger("imagedata")
    level = logger.level
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)


def message(response) -> str:
    """The message of a JSON error body, checking Glance's flat shape on the way."""
    body = response.get_json()
    assert set(body) == {"message", "code", "title"}, body
    assert body["code"] == response.status
    return body["message"]


# ------------------------------------------------------------------ media types

@pytest.mark.parametrize("content_type, expected", [
    (None, "The request has no Content-Type: send image data with Content-Type: application/octet-stream."),
    ("application/json", "Content-Type 'application/json' is not supported: send image data with "
                         "Content-Type: application/octet-stream."),
], ids=["missing", "json"])
def test_upload_415_names_octet_stream(client, auth, new_image, content_type, expected):
    image_id = new_image()["id"]
    headers = {**auth, **JSON, **({"Content-Type": content_type} if content_type else {})}
    response = client.put(f"/v2/images/{image_id}/file", data=b"abc", headers=headers)
    assert response.status_code == 415
    assert message(response) == expected
    # Short text for clients that did not ask for JSON (glanceclient), the same words.
    text = client.put(f"/v2/images/{image_id}/file", data=b"abc",
                      headers={k: v for k, v in headers.items() if k != "Accept"})
    assert text.mimetype == "text/plain" and text.get_data(as_text=True) == f"415 Unsupported Media Type\n\n{expected}\n"


@pytest.mark.parametrize("content_type, shown", [(None, None), ("application/json", "'application/json'")],
                         ids=["missing", "json"])
def test_patch_415_names_the_json_patch_types(client, auth, new_image, content_type, shown):
    image_id = new_image()["id"]
    headers = {**auth, **JSON, **({"Content-Type": content_type} if content_type else {})}
    response = client.patch(f"/v2/images/{image_id}", data=b"[]", headers=headers)
    assert response.status_code == 415
    start = "The request has no Content-Type" if shown is None else f"Content-Type {shown} is not supported"
    assert message(response) == (f"{start}: send a JSON patch with Content-Type: {PATCH_TYPES[0]} "
                                 f"(or {PATCH_TYPES[1]}).")
    assert response.headers["Accept-Patch"] == ", ".join(PATCH_TYPES)


# ------------------------------------------------------------------ image state and ids

def test_upload_to_an_active_image_says_it_has_data(client, auth, new_image, upload):
    image_id = new_image()["id"]
    assert upload(image_id, b"first").status_code == 204
    response = upload(image_id, b"second", headers={**auth, **JSON})
    assert response.status_code == 409
    assert message(response) == (f"Image {image_id} already has data (status active); image data is never "
                                 "replaced: create a new image to upload other data.")


def test_upload_during_another_upload_says_wait(client, auth, new_image, upload):
    image_id = new_image()["id"]
    with database.connection_context():
        Image.update(status="saving").where(Image.id == image_id).execute()
    response = upload(image_id, b"data", headers={**auth, **JSON})
    assert response.status_code == 409
    assert message(response) == (f"Image {image_id} is receiving data from another upload (status saving): "
                                 "wait for it to end; if it fails, the image is queued again and accepts an upload.")


def test_a_deleted_images_id_is_refused_saying_why(client, auth, new_image):
    image_id = new_image()["id"]
    assert client.delete(f"/v2/images/{image_id}", headers=auth).status_code == 204
    assert client.get(f"/v2/images/{image_id}", headers=auth).status_code == 404
    again = client.post("/v2/images", json={"id": image_id, "name": "again"}, headers={**auth, **JSON})
    assert again.status_code == 409
    assert message(again) == (f"An image with identifier {image_id} existed and was deleted; image ids are "
                              "never reused: create the image without an id (one is chosen for it) or with a "
                              "new one.")
    live = new_image()["id"]
    taken = client.post("/v2/images", json={"id": live}, headers={**auth, **JSON})
    assert (taken.status_code, message(taken)) == (409, f"An image with identifier {live} already exists")


@pytest.mark.parametrize("body, kind", [([{"name": "x"}], "an array"), ("cirros", "a string"), (None, "null")])
def test_a_body_that_is_not_an_object_says_what_is_expected(client, auth, body, kind):
    response = client.post("/v2/images", data=json.dumps(body), content_type="application/json",
                           headers={**auth, **JSON})
    assert response.status_code == 400
    assert message(response) == ('The request body must be a JSON object of image attributes, such as '
                                 '{"name": "cirros", "disk_format": "qcow2", "container_format": "bare"}; '
                                 f"it is {kind}.")


def test_a_member_body_that_is_not_an_object_says_what_is_expected(client, auth, new_image):
    image_id = new_image(visibility="shared")["id"]
    response = client.post(f"/v2/images/{image_id}/members", json=["p2"], headers={**auth, **JSON})
    assert response.status_code == 400
    assert message(response) == ('The request body must be a JSON object of member fields, such as '
                                 '{"member": "<project id>"}; it is an array.')


def test_an_unknown_store_lists_the_stores(client, auth, new_image, upload):
    image_id = new_image()["id"]
    response = upload(image_id, b"data", headers={**auth, **JSON, "X-Image-Meta-Store": "fast"})
    assert response.status_code == 400
    assert message(response) == ("Store for identifier fast not found. The stores are: local, slow; name one in "
                                 "X-Image-Meta-Store, or send none for the default (local).")


# ------------------------------------------------------------------ import, copies and stores

STORES_LISTED = "(configured stores: local, slow; the default is local)"


def test_stage_415_names_octet_stream(client, auth, new_image):
    response = client.put(f"/v2/images/{new_image()['id']}/stage", data=b"abc",
                          headers={**auth, **JSON, "Content-Type": "text/plain"})
    assert (response.status_code, message(response)) == (
        415, "Content-Type 'text/plain' is not supported: send image data with Content-Type: application/octet-stream.")


def test_staged_data_says_import_it(client, auth, new_image, upload):
    image_id = new_image()["id"]
    staged = client.put(f"/v2/images/{image_id}/stage", data=DATA, headers={**auth, "Content-Type": OCTET})
    assert staged.status_code == 204
    for again in (upload(image_id, b"data", headers={**auth, **JSON}),
                  client.put(f"/v2/images/{image_id}/stage", data=b"x",
                             headers={**auth, **JSON, "Content-Type": OCTET})):
        assert (again.status_code, message(again)) == (
            409, f"Image {image_id} has staged data waiting for an import (status uploading): import it with "
                 f"POST /v2/images/{image_id}/import (glance-direct), or delete the image.")


def test_an_import_in_the_wrong_status_says_what_to_do(client, auth, new_image, upload):
    image_id = new_image()["id"]
    body = {"method": {"name": "glance-direct"}}
    early = client.post(f"/v2/images/{image_id}/import", json=body, headers={**auth, **JSON})
    assert (early.status_code, message(early)) == (
        409, "Image status 'queued' does not allow glance-direct: it needs an image in status 'uploading'; stage "
             f"the data first with PUT /v2/images/{image_id}/stage.")
    assert upload(image_id, DATA).status_code == 204
    late = client.post(f"/v2/images/{image_id}/import", json=body, headers={**auth, **JSON})
    assert (late.status_code, message(late)) == (
        409, "Image status 'active' does not allow glance-direct: it needs an image in status 'uploading'; the "
             "image has data already; copy-image copies it into more stores.")


def test_an_unknown_store_of_an_import_lists_the_stores(client, auth, new_image):
    image_id = new_image()["id"]
    staged = client.put(f"/v2/images/{image_id}/stage", data=DATA, headers={**auth, "Content-Type": OCTET})
    assert staged.status_code == 204
    body = {"method": {"name": "glance-direct"}, "stores": ["fast"]}
    response = client.post(f"/v2/images/{image_id}/import", json=body, headers={**auth, **JSON})
    assert (response.status_code, message(response)) == (
        409, f"Store 'fast' is not configured {STORES_LISTED}: name those in stores or X-Image-Meta-Store, or send "
             "all_stores: true.")


def test_an_unknown_store_of_a_copy_or_a_download_lists_the_stores(client, auth, admin_token, new_image, upload):
    image_id = new_image()["id"]
    assert upload(image_id, DATA).status_code == 204
    gone = client.delete(f"/v2/stores/fast/{image_id}", headers={"X-Auth-Token": admin_token, **JSON})
    assert (gone.status_code, message(gone)) == (409, f"Store 'fast' is not configured {STORES_LISTED}.")
    # The staging store is never one a client may name.
    staging = client.get(f"/v2/images/{image_id}/file?prefer=local,os_glance_staging_store",
                         headers={**auth, **JSON})
    assert (staging.status_code, message(staging)) == (
        400, f"Store 'os_glance_staging_store' is not configured {STORES_LISTED}: name those in ?prefer=.")


# ------------------------------------------------------------------ a body that stops short

def cut_after(client, image_id, auth, keep: int, error: BaseException | None, total: int = len(DATA),
              chunked: bool = False, **headers):
    """An upload of ``total`` declared bytes that stops after ``keep``: ``error`` raised by the next read
    (a reset, a timeout), or the end of the stream (None)."""
    def explode(n):
        if n > 1 and error is not None:
            raise error

    body = Body(DATA[:keep], piece=keep, on_read=explode)
    return put_stream(client, image_id, body, {**auth, **JSON, **headers},
                      content_length=None if chunked else total, chunked=chunked)


@pytest.mark.parametrize("error, why", [
    (ConnectionResetError("peer went away"), "the connection was reset"),
    (TimeoutError("timed out"), "no data arrived for 60 seconds"),
    (None, "the connection closed before the end of the body"),
], ids=["reset", "idle-timeout", "closed"])
def test_a_cut_upload_says_what_arrived_and_how_to_resume(client, auth, new_image, error, why):
    image_id = new_image()["id"]
    response = cut_after(client, image_id, auth, 4000, error)
    assert response.status_code == 400
    assert message(response) == (
        f"The upload was cut off after 4000 of 10240 bytes ({why}). The 4000 bytes are kept for 24 hours: "
        "resume by sending the rest with Content-Range: bytes 4000-10239/10240 (curl -C 4000 -T FILE); HEAD on "
        "this URL shows the kept bytes in Upload-Offset.")
    head = client.head(f"/v2/images/{image_id}/file", headers=auth)
    assert head.headers["Upload-Offset"] == "4000"  # what the message promised
    rest = client.put(f"/v2/images/{image_id}/file", data=DATA[4000:],
                      headers={**auth, "Content-Type": OCTET, "Content-Range": "bytes 4000-10239/10240"})
    assert rest.status_code == 204


@with_env(IMAGEDATA_RESUME_SECONDS=5400)
def test_the_kept_time_is_the_configured_one(client, auth, new_image):
    response = cut_after(client, new_image()["id"], auth, 100, ConnectionResetError())
    assert "The 100 bytes are kept for 90 minutes: resume by sending the rest with Content-Range: bytes " \
           "100-10239/10240" in message(response)


@with_env(IMAGEDATA_RESUME_SECONDS=0)
def test_a_cut_upload_without_resuming_says_start_again(client, auth, new_image):
    response = cut_after(client, new_image()["id"], auth, 4000, ConnectionResetError())
    assert message(response) == ("The upload was cut off after 4000 of 10240 bytes (the connection was reset). "
                                 "Nothing was kept (resumable uploads are off on this server): upload the whole "
                                 "image again.")


def test_a_cut_chunked_upload_of_unknown_size_says_how_to_make_it_resumable(client, auth, new_image):
    response = cut_after(client, new_image()["id"], auth, 4000, ConnectionResetError(), chunked=True)
    assert response.status_code == 400
    assert message(response) == ("The upload was cut off after 4000 bytes (the connection was reset). Nothing was "
                                 "kept, as the image size was not declared: upload the image again; with "
                                 "Content-Length or x-openstack-image-size the upload can be resumed after a cut.")


# ------------------------------------------------------------------ 401: a challenge, and a reason in the log

def expired_and_revoked(make_token):
    expired, revoked = make_token("p1"), make_token("p1")
    with database.connection_context():
        rows = list(Token.select().order_by(Token.id))
        Token.update(expires_at=datetime.datetime(2020, 1, 1)).where(Token.id == rows[-2].id).execute()
        Token.update(revoked=True).where(Token.id == rows[-1].id).execute()
    return (expired, rows[-2].token_id), (revoked, rows[-1].token_id)


def test_every_401_has_a_challenge_and_the_log_says_why(client, make_token, logged):
    (expired, expired_id), (revoked, revoked_id) = expired_and_revoked(make_token)
    unknown = "idt_" + "x" * 43
    cases = [
        ({}, "no X-Auth-Token header"),
        ({"X-Auth-Token": unknown}, "unknown token"),
        ({"X-Auth-Token": "not-ours"}, "the X-Auth-Token is not an imagedata token (they start with idt_)"),
        ({"X-Auth-Token": expired}, f"token {expired_id} (project p1) expired at 2020-01-01T00:00:00Z"),
        ({"X-Auth-Token": revoked}, f"token {revoked_id} (project p1) is revoked"),
    ]
    for headers, why in cases:
        logged.clear()
        response = client.get("/v2/images", headers={**headers, **JSON})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'X-Auth-Token realm="imagedata"'
        assert message(response) == "The request you have made requires authentication."
        lines = [r.getMessage() for r in logged.records if r.name == "imagedata.auth.request"]
        assert lines == [f"401 on GET /v2/images: {why}"]
        for secret in (unknown, expired, revoked):
            assert secret not in logged.text


@with_env(IMAGEDATA_AUTH="trusted-headers")
def test_trusted_headers_401_has_a_challenge_too(client, logged):
    response = client.get("/v2/images", headers={"X-Project-Id": "p1", "X-Roles": "member"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'X-Auth-Token realm="imagedata"'
    assert ("401 on GET /v2/images: X-Identity-Status is missing, not Confirmed (the proxy did not "
            "authenticate)") in logged.text


# ------------------------------------------------------------------ data declared raw that is another format

@pytest.fixture(scope="module")
def qcow2_file(tmp_path_factory):
    """A real qcow2 made by qemu-img (16 MiB virtual, a few hundred KiB of file)."""
    if shutil.which("qemu-img") is None:
        skip_or_fail("qemu-img is not installed (Debian package qemu-utils; .ci/run installs it)")
    path = tmp_path_factory.mktemp("qcow2") / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True, timeout=60)
    return path.read_bytes()


def test_a_qcow2_declared_raw_is_stored_as_raw_and_says_so(client, auth, new_image, upload, qcow2_file, logged):
    image_id = new_image(disk_format="raw")["id"]
    response = upload(image_id, qcow2_file)
    assert response.status_code == 204
    assert response.headers["Imagedata-Detected-Format"] == "qcow2"
    image = client.get(f"/v2/images/{image_id}", headers=auth).get_json()
    assert (image["status"], image["disk_format"], image["size"]) == ("active", "raw", len(qcow2_file))
    assert image["virtual_size"] == len(qcow2_file)  # raw: the bytes as they are
    assert image["imagedata_detected_format"] == "qcow2"
    found = client.get("/v2/images?imagedata_detected_format=qcow2", headers=auth).get_json()["images"]
    assert [i["id"] for i in found] == [image_id]
    assert (f"image {image_id} was declared raw but its data is a qcow2 image: stored as raw, as declared; to use "
            "it as qcow2, create an image with disk_format qcow2") in logged.text
    assert client.get(f"/v2/images/{image_id}/file", headers=auth).data == qcow2_file


def test_a_qcow2_declared_raw_and_imported_says_so_too(client, auth, new_image, qcow2_file, logged):
    image_id = new_image(disk_format="raw")["id"]
    staged = client.put(f"/v2/images/{image_id}/stage", data=qcow2_file, headers={**auth, "Content-Type": OCTET})
    assert staged.status_code == 204
    started = client.post(f"/v2/images/{image_id}/import", json={"method": {"name": "glance-direct"}}, headers=auth)
    assert started.status_code == 202
    deadline = time.monotonic() + 30
    while (image := client.get(f"/v2/images/{image_id}", headers=auth).get_json())["status"] == "importing" \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (image["status"], image["disk_format"], image["size"]) == ("active", "raw", len(qcow2_file))
    assert image["imagedata_detected_format"] == "qcow2"
    assert f"image {image_id} was declared raw but its data is a qcow2 image" in logged.text


def test_a_qcow2_declared_qcow2_has_no_note(client, auth, new_image, upload, qcow2_file):
    image_id = new_image(disk_format="qcow2")["id"]
    response = upload(image_id, qcow2_file)
    assert response.status_code == 204 and "Imagedata-Detected-Format" not in response.headers
    image = client.get(f"/v2/images/{image_id}", headers=auth).get_json()
    assert "imagedata_detected_format" not in image and image["virtual_size"] == 16 << 20
    plain = new_image(disk_format="raw")["id"]
    assert "Imagedata-Detected-Format" not in upload(plain, DATA).headers


def test_clients_cannot_set_the_detected_format(client, auth, new_image):
    created = client.post("/v2/images", json={"name": "x", "imagedata_detected_format": "qcow2"},
                          headers={**auth, **JSON})
    assert (created.status_code, message(created)) == (403, "Attribute 'imagedata_detected_format' is reserved.")
    image_id = new_image()["id"]
    patched = client.patch(f"/v2/images/{image_id}", headers={**auth, **JSON, "Content-Type": PATCH_TYPES[0]},
                           data=json.dumps([{"op": "add", "path": "/imagedata_detected_format", "value": "qcow2"}]))
    assert (patched.status_code, message(patched)) == (403, "Attribute 'imagedata_detected_format' is reserved.")
