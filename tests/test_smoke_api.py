"""A first end-to-end pass through the Flask client: create, upload, download."""
import hashlib


def test_create_upload_download(client, auth, new_image, upload):
    image = new_image()
    assert image["status"] == "queued"
    response = upload(image["id"], b"ZZZZZ")
    assert response.status_code == 204
    shown = client.get(f"/v2/images/{image['id']}", headers=auth).get_json()
    assert shown["status"] == "active"
    assert shown["size"] == 5
    assert shown["checksum"] == hashlib.md5(b"ZZZZZ").hexdigest()
    assert shown["os_hash_value"] == hashlib.sha512(b"ZZZZZ").hexdigest()
    got = client.get(f"/v2/images/{image['id']}/file", headers=auth)
    assert got.status_code == 200
    assert got.data == b"ZZZZZ"
    assert got.headers["Content-MD5"] == hashlib.md5(b"ZZZZZ").hexdigest()
