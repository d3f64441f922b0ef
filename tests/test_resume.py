"""Resumable uploads and client digests through the API (Flask client, real stores and database)."""
from __future__ import annotations

import base64
import datetime
import hashlib
import os

import pytest

from imagedata.db import database
from imagedata.models import Image
from imagedata.service import lifecycle
from tests.conftest import store_files
from tests.helpers import OCTET, Body, with_env
from tests.test_api_data import put_stream

DATA = bytes(range(256)) * 40  # 10240 bytes


def files_of(tmp_path, image_id):
    return [os.path.basename(p) for p in store_files(tmp_path) if image_id in p]


def cut(client, image_id, auth, keep: int, total: int = len(DATA), **headers):
    """An upload of ``total`` bytes whose client disappears after ``keep`` bytes."""
    def explode(n):
        if n > 1:
            raise ConnectionResetError("peer went away")

    response = put_stream(client, image_id, Body(DATA[:keep], piece=keep, on_read=explode),
                          {**auth, **headers}, content_length=total)
    assert response.status_code == 400
    return response


def resume(client, image_id, auth, offset, data=DATA, total=None, **headers):
    total = len(data) if total is None else total
    hdrs = {**auth, "Content-Type": OCTET, "Content-Range": f"bytes {offset}-{total - 1}/{total}", **headers}
    return client.put(f"/v2/images/{image_id}/file", data=data[offset:], headers=hdrs)


def head(client, image_id, auth):
    return client.head(f"/v2/images/{image_id}/file", headers=auth)


def test_a_cut_upload_is_kept_and_continued(client, auth, new_image, tmp_path):
    image_id = new_image()["id"]
    cut(client, image_id, auth, 4000)
    answer = head(client, image_id, auth)
    assert answer.status_code == 204
    assert (answer.headers["Upload-Offset"], answer.headers["Upload-Length"]) == ("4000", str(len(DATA)))
    done = resume(client, image_id, auth, 4000)
    assert done.status_code == 204, done.data
    image = client.get(f"/v2/images/{image_id}", headers=auth).get_json()
    assert image["status"] == "active" and image["size"] == len(DATA)
    assert image["checksum"] == hashlib.md5(DATA).hexdigest()
    assert image["os_hash_value"] == hashlib.sha512(DATA).hexdigest()
    assert client.get(f"/v2/images/{image_id}/file", headers=auth).data == DATA
    assert len(files_of(tmp_path, image_id)) == 1 and "Upload-Offset" not in head(client, image_id, auth).headers


def test_a_resumed_upload_can_be_cut_again(client, auth, new_image):
    image_id = new_image()["id"]
    cut(client, image_id, auth, 1000)
    hdrs = {**auth, "Content-Range": f"bytes 1000-{len(DATA) - 1}/{len(DATA)}"}

    def explode(n):
        if n > 1:
            raise ConnectionResetError("again")

    response = put_stream(client, image_id, Body(DATA[1000:3000], piece=2000, on_read=explode), hdrs,
                          content_length=len(DATA) - 1000)
    assert response.status_code == 400
    assert head(client, image_id, auth).headers["Upload-Offset"] == "3000"
    assert resume(client, image_id, auth, 3000).status_code == 204
    assert client.get(f"/v2/images/{image_id}/file", headers=auth).data == DATA


@pytest.mark.parametrize("offset", [0, 3999, 4001, 9000])
def test_a_stale_or_wrong_offset_is_409_with_the_current_offset(client, auth, new_image, offset):
    image_id = new_image()["id"]
    cut(client, image_id, auth, 4000)
    response = resume(client, image_id, auth, offset)
    assert response.status_code == 409
    assert response.headers["Upload-Offset"] == "4000"
    assert head(client, image_id, auth).headers["Upload-Offset"] == "4000"  # still kept


def test_a_different_total_is_400(client, auth, new_image):
    image_id = new_image()["id"]
    cut(client, image_id, auth, 4000)
    response = resume(client, image_id, auth, 4000, data=DATA + b"more")
    assert response.status_code == 400 and b"total of 10240" in response.data
    assert head(client, image_id, auth).headers["Upload-Offset"] == "4000"


@pytest.mark.parametrize("value", ["bytes 0-10/*", "bytes 5-3/10", "bytes 0-5/10", "items 0-9/10", "bytes -5/10",
                                   "bytes 0-9/10, 10-19/20", "bytes=0-9/10", "bytes 99999999999999999999999-1/2"])
def test_malformed_content_range_is_400(client, auth, new_image, value):
    image_id = new_image()["id"]
    response = client.put(f"/v2/images/{image_id}/file", data=b"0123456789",
                          headers={**auth, "Content-Type": OCTET, "Content-Range": value})
    assert response.status_code == 400
    assert client.get(f"/v2/images/{image_id}", headers=auth).get_json()["status"] == "queued"


def test_content_length_must_match_the_range(client, auth, new_image):
    image_id = new_image()["id"]
    response = client.put(f"/v2/images/{image_id}/file", data=b"0123",
                          headers={**auth, "Content-Type": OCTET, "Content-Range": "bytes 0-9/10"})
    assert response.status_code == 400


def test_continuing_when_nothing_is_kept_is_409_at_offset_0(client, auth, new_image):
    """curl -C N -T file on a fresh image must never store just the tail (the old truncation bug)."""
    image_id = new_image()["id"]
    response = resume(client, image_id, auth, 1000)
    assert response.status_code == 409 and response.headers["Upload-Offset"] == "0"
    assert client.get(f"/v2/images/{image_id}", headers=auth).get_json()["status"] == "queued"
    assert resume(client, image_id, auth, 0).status_code == 204  # bytes 0-(T-1)/T is a whole upload
    assert client.get(f"/v2/images/{image_id}/file", headers=auth).data == DATA


def test_a_plain_put_discards_the_kept_data_and_starts_over(client, auth, new_image, tmp_path):
    image_id = new_image()["id"]
    cut(client, image_id, auth, 4000)
    kept = files_of(tmp_path, image_id)
    response = client.put(f"/v2/images/{image_id}/file", data=b"fresh", headers={**auth, "Content-Type": OCTET})
    assert response.status_code == 204
    assert client.get(f"/v2/images/{image_id}/file", headers=auth).data == b"fresh"
    assert kept[0] not in files_of(tmp_path, image_id) and len(files_of(tmp_path, image_id)) == 1


def test_a_resume_continues_in_the_store_that_keeps_the_data(client, auth, new_image):
    image_id = new_image()["id"]
    cut(client, image_id, auth, 4000, **{"X-Image-Meta-Store": "slow"})
    assert resume(client, image_id, auth, 4000, **{"X-Image-Meta-Store": "local"}).status_code == 400
    assert resume(client, image_id, auth, 4000).status_code == 204
    assert client.get(f"/v2/images/{image_id}", headers=auth).get_json()["stores"] == "slow"


def test_only_the_owner_may_continue(client, auth, new_image, make_token):
    image_id = new_image(visibility="shared")["id"]
    cut(client, image_id, auth, 4000)
    other = {"X-Auth-Token": make_token("p2")}
    assert resume(client, image_id, other, 4000).status_code == 404
    assert head(client, image_id, auth).headers["Upload-Offset"] == "4000"


@with_env(IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=15000)
def test_kept_data_holds_its_quota_until_it_expires(app, client, auth, new_image, tmp_path):
    first = new_image()["id"]
    cut(client, first, auth, 4000)
    usage = client.get("/v2/info/usage", headers=auth).get_json()["usage"]["image_size_total"]["usage"]
    assert usage == len(DATA)  # the whole declared size stays reserved
    second = new_image()["id"]
    response = client.put(f"/v2/images/{second}/file", data=DATA, headers={**auth, "Content-Type": OCTET})
    assert response.status_code == 413
    with database.connection_context():
        Image.update(kept_expires=datetime.datetime(2000, 1, 1)).where(Image.id == first).execute()
        assert lifecycle.expire_kept(app.extensions["imagedata"]) == [first]
    assert files_of(tmp_path, first) == []
    assert "Upload-Offset" not in head(client, first, auth).headers
    assert client.get("/v2/info/usage", headers=auth).get_json()["usage"]["image_size_total"]["usage"] == 0
    assert client.put(f"/v2/images/{second}/file", data=DATA, headers={**auth, "Content-Type": OCTET}).status_code == 204


def test_deleting_an_image_removes_its_kept_data_and_releases_the_quota(client, auth, new_image, tmp_path):
    image_id = new_image()["id"]
    cut(client, image_id, auth, 4000)
    assert client.delete(f"/v2/images/{image_id}", headers=auth).status_code == 204
    assert files_of(tmp_path, image_id) == []
    assert client.get("/v2/info/usage", headers=auth).get_json()["usage"]["image_size_total"]["usage"] == 0


def test_scrub_leaves_kept_data_alone(client, auth, new_image, runner, tmp_path):
    image_id = new_image()["id"]
    cut(client, image_id, auth, 4000)
    result = runner.invoke(args=["scrub"])
    assert "0 orphan(s)" in result.output, result.output
    assert len(files_of(tmp_path, image_id)) == 1


# -- client digests ------------------------------------------------------------------------------

def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


@pytest.mark.parametrize("headers", [
    {"Content-MD5": b64(hashlib.md5(DATA).digest())},
    {"Content-MD5": hashlib.md5(DATA).hexdigest()},
    {"Repr-Digest": f"sha-256=:{b64(hashlib.sha256(DATA).digest())}:"},
    {"Repr-Digest": f"sha-512=:{b64(hashlib.sha512(DATA).digest())}:, md5=:{b64(hashlib.md5(DATA).digest())}:"},
    {"Repr-Digest": f"unixsum=:AAAA:, sha-256=:{b64(hashlib.sha256(DATA).digest())}:"},
], ids=["content-md5", "content-md5-hex", "sha-256", "sha-512+md5", "unknown-ignored"])
def test_a_matching_client_digest_is_accepted(client, auth, new_image, headers):
    image_id = new_image()["id"]
    response = client.put(f"/v2/images/{image_id}/file", data=DATA,
                          headers={**auth, "Content-Type": OCTET, **headers})
    assert response.status_code == 204, response.data


@pytest.mark.parametrize("headers,name", [
    ({"Content-MD5": b64(hashlib.md5(b"other").digest())}, "md5"),
    ({"Repr-Digest": f"sha-256=:{b64(hashlib.sha256(b'other').digest())}:"}, "sha-256"),
    ({"Repr-Digest": f"sha-512=:{b64(hashlib.sha512(b'other').digest())}:"}, "sha-512"),
])
def test_a_wrong_client_digest_is_400_naming_both_and_keeps_nothing(client, auth, new_image, tmp_path, headers, name):
    image_id = new_image()["id"]
    response = client.put(f"/v2/images/{image_id}/file", data=DATA,
                          headers={**auth, "Content-Type": OCTET, "Accept": "application/json", **headers})
    assert response.status_code == 400
    message = response.get_json()["message"]
    sent = {"md5": hashlib.md5(b"other"), "sha-256": hashlib.sha256(b"other"),
            "sha-512": hashlib.sha512(b"other")}[name].hexdigest()
    got = {"md5": hashlib.md5(DATA), "sha-256": hashlib.sha256(DATA), "sha-512": hashlib.sha512(DATA)}[name].hexdigest()
    assert name in message and sent in message and got in message
    assert files_of(tmp_path, image_id) == []
    assert "Upload-Offset" not in head(client, image_id, auth).headers
    assert client.get(f"/v2/images/{image_id}", headers=auth).get_json()["status"] == "queued"


@pytest.mark.parametrize("headers", [{"Content-MD5": "not base64!"}, {"Content-MD5": b64(b"short")},
                                     {"Repr-Digest": "sha-256=abc"}, {"Repr-Digest": "sha-256=:AAAA:"}])
def test_a_malformed_client_digest_is_400(client, auth, new_image, headers):
    image_id = new_image()["id"]
    response = client.put(f"/v2/images/{image_id}/file", data=DATA, headers={**auth, "Content-Type": OCTET, **headers})
    assert response.status_code == 400


def test_a_resumed_upload_is_checked_against_the_digest_of_the_whole_image(client, auth, new_image, tmp_path):
    image_id = new_image()["id"]
    cut(client, image_id, auth, 4000)
    wrong = resume(client, image_id, auth, 4000, **{"Repr-Digest": f"sha-256=:{b64(hashlib.sha256(DATA[4000:]).digest())}:"})
    assert wrong.status_code == 400
    assert files_of(tmp_path, image_id) == [] and "Upload-Offset" not in head(client, image_id, auth).headers
    cut(client, image_id, auth, 4000)
    right = resume(client, image_id, auth, 4000, **{"Repr-Digest": f"sha-256=:{b64(hashlib.sha256(DATA).digest())}:"})
    assert right.status_code == 204


def test_downloads_carry_repr_digest(client, auth, new_image):
    image_id = new_image()["id"]
    client.put(f"/v2/images/{image_id}/file", data=DATA, headers={**auth, "Content-Type": OCTET})
    expected = f"sha-512=:{b64(hashlib.sha512(DATA).digest())}:, md5=:{b64(hashlib.md5(DATA).digest())}:"
    assert client.get(f"/v2/images/{image_id}/file", headers=auth).headers["Repr-Digest"] == expected
    ranged = client.get(f"/v2/images/{image_id}/file", headers={**auth, "Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.headers["Repr-Digest"] == expected
