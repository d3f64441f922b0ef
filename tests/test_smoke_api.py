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


def test_qcow2_declared_but_raw_data_is_415_and_queued(client, auth, new_image, upload):
    """Glance conformance 30: the data must match disk_format for bare containers."""
    image = new_image(disk_format="qcow2")
    response = upload(image["id"], b"\x01" * 65536)
    assert response.status_code == 415
    shown = client.get(f"/v2/images/{image['id']}", headers=auth).get_json()
    assert (shown["status"], shown["size"], shown["checksum"]) == ("queued", None, None)


def test_qcow2_virtual_size_comes_from_its_header(client, auth, new_image, upload):
    """Glance conformance 31: virtual_size of a qcow2 is the disk size in its header."""
    from tests.test_inspect import qcow2

    image = new_image(disk_format="qcow2")
    data = qcow2(virtual_size=134217728)
    assert upload(image["id"], data).status_code == 204
    shown = client.get(f"/v2/images/{image['id']}", headers=auth).get_json()
    assert (shown["status"], shown["size"], shown["virtual_size"]) == ("active", len(data), 134217728)


import pytest  # noqa: E402


@pytest.mark.parametrize("agent,accept,json_body", [
    ("python-glanceclient", "*/*", False),
    ("curl/7.88.1", "*/*", False),
    ("openstacksdk/4.22.0 keystoneauth1/5.18.1 python-requests/2.34.2 CPython/3.11.7", "*/*", True),
    ("openstacksdk/4.22.0 keystoneauth1/5.18.1 python-requests/2.34.2 CPython/3.11.7", "", True),
    ("openstacksdk/4.22.0 keystoneauth1/5.18.1", "text/plain", False),
    ("anything", "application/json", True),
])
def test_error_format_follows_the_client(client, auth, agent, accept, json_body):
    """JSON for clients that ask for it and for openstacksdk (which only reads JSON); text otherwise."""
    response = client.get("/v2/images/00000000-0000-0000-0000-000000000000",
                          headers={**auth, "User-Agent": agent, "Accept": accept})
    assert response.status_code == 404
    if json_body:
        assert response.get_json()["code"] == "404 Not Found"
    else:
        assert response.mimetype == "text/plain"
        assert response.get_data(as_text=True).startswith("404 Not Found")


@pytest.mark.parametrize("body", [{"min_ram": 800082040516944592896}, {"min_disk": 2**31}, {"min_ram": -1}])
def test_out_of_range_integers_are_400(client, auth, body):
    """Found by schemathesis: integers the database cannot hold are a client error, not a 500."""
    assert client.post("/v2/images", json=body, headers=auth).status_code == 400


@pytest.mark.parametrize("query, listed", [("size_min=99999999999999999999999", False),
                                           ("size_max=9223372036854775808", True),
                                           ("size_max=-99999999999999999999999", False)])
def test_out_of_range_filters_are_all_or_nothing(client, auth, new_image, query, listed):
    """Found by schemathesis (then a 500): a bound no 64-bit column can reach is answered without
    asking the database; it lists every image or none (the list-filter rules, tests/test_list_filters.py)."""
    image, queued = new_image(), new_image()
    put = client.put(f"/v2/images/{image['id']}/file", data=b"abc",
                     headers={**auth, "Content-Type": "application/octet-stream"})
    assert put.status_code == 204
    response = client.get(f"/v2/images?{query}", headers=auth)
    assert response.status_code == 200
    ids = [i["id"] for i in response.get_json()["images"]]
    assert (image["id"] in ids) == listed
    assert queued["id"] not in ids  # no size: outside every bound


def test_patch_out_of_range_is_400(client, auth, new_image):
    image = new_image()
    response = client.patch(f"/v2/images/{image['id']}", json=[{"op": "replace", "path": "/min_ram", "value": 2**40}],
                            headers={**auth, "Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert response.status_code == 400
