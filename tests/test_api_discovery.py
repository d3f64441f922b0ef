"""Discovery and cross-cutting behaviour: versions, schemas, /v2/info/*, health, error bodies, request ids.

Glance's contract (spec /work/shared/spec/glance-behavior.md §2.3, §6, §7 and conformance tests
71-79 and 83) with this service's choices: stores are always multi-store, error bodies are JSON
only when the client explicitly accepts application/json and text/plain otherwise (never HTML,
routing errors included), and every response carries ``x-openstack-request-id: req-...``.
"""
from __future__ import annotations

import re
import shutil
import uuid

import pytest
from tests.helpers import OCTET, with_env

# HTTP behaviour and documents: the database backends are covered by the other modules.
DB_BACKENDS = ("sqlite",)
# The versions whose every API is here (imagedata/api/versions.py says which parts are missing).
VERSIONS = [("v2.15", "CURRENT")] + [(f"v2.{minor}", "SUPPORTED") for minor in range(13, -1, -1)]
IMAGE_SCHEMA_PROPERTIES = {
    "id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo", "os_hash_value",
    "owner", "size", "virtual_size", "container_format", "disk_format", "created_at", "updated_at", "tags",
    "direct_url", "min_ram", "min_disk", "self", "file", "stores", "schema", "locations",
}
STATUSES = {"queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete",
            "deactivated"}
DISK_FORMATS = [None, "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
CONTAINER_FORMATS = [None, "ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")




def versions_body(base="http://localhost"):
    return {"versions": [{"id": version, "status": status, "links": [{"rel": "self", "href": f"{base}/v2/"}]}
                         for version, status in VERSIONS]}


@pytest.fixture
def admin(admin_token):
    return {"X-Auth-Token": admin_token}


@pytest.fixture
def active(new_image, upload):
    """An active image of p1 holding 26 bytes."""
    image = new_image()
    assert upload(image["id"], b"ABCDEFGHIJKLMNOPQRSTUVWXYZ").status_code == 204
    return image["id"]


# --------------------------------------------------------------------------- versions


def test_root_is_300_without_auth(client):
    response = client.get("/")
    assert response.status_code == 300
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body == versions_body()
    assert [v["id"] for v in body["versions"] if v["status"] == "CURRENT"] == ["v2.15"]
    assert all(link["href"].endswith("/v2/") for v in body["versions"] for link in v["links"])


def test_versions_is_200_with_same_body(client):
    response = client.get("/versions")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == client.get("/").get_json()


@pytest.mark.parametrize("path", ["/v10", "/va.1/images", "/v3/images", "/v1/images", "/v2.16/images",
                                  "/v2.14/images", "/images", "/v2.99"])
def test_unknown_version_is_300(client, path):
    response = client.get(path)
    assert response.status_code == 300
    assert response.get_json() == versions_body()


@pytest.mark.parametrize("prefix", ["v2.0", "v2.1", "v2.8", "v2.13", "v2.15", "v2.17"])
def test_versioned_prefix_is_the_v2_api(client, auth, new_image, prefix):
    new_image(name="one")
    expected = client.get("/v2/images", headers=auth).get_json()
    response = client.get(f"/{prefix}/images", headers=auth)
    assert response.status_code == 200
    assert response.get_json() == expected
    assert client.get(f"/{prefix}/images").status_code == 401


@with_env(IMAGEDATA_PUBLIC_ENDPOINT="https://images.example.com/")
def test_public_endpoint_in_links(client, auth):
    assert client.get("/").get_json() == versions_body("https://images.example.com")
    created = client.post("/v2/images", json={}, headers=auth)
    assert created.headers["Location"] == f"https://images.example.com/v2/images/{created.get_json()['id']}"


# --------------------------------------------------------------------------- schemas


def test_image_schema(client, auth):
    response = client.get("/v2/schemas/image", headers=auth)
    assert response.status_code == 200
    schema = response.get_json()
    assert schema["name"] == "image"
    properties = schema["properties"]
    assert set(properties) == IMAGE_SCHEMA_PROPERTIES
    assert set(properties["status"]["enum"]) == STATUSES
    assert set(properties["visibility"]["enum"]) == {"public", "private", "shared", "community"}
    assert properties["disk_format"]["enum"] == DISK_FORMATS
    assert properties["container_format"]["enum"] == CONTAINER_FORMATS
    assert properties["id"]["pattern"] == (r"^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
                                           r"-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$")
    assert properties["name"]["type"] == ["null", "string"] and properties["name"]["maxLength"] == 255
    for read_only in ("status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size",
                      "created_at", "updated_at", "self", "file", "schema", "stores", "direct_url"):
        assert properties[read_only]["readOnly"] is True, read_only
    assert properties["stores"]["type"] == "string"
    # Glance says only {"type": "string"}; we also state the bound we enforce (a TEXT column's 64 KiB).
    assert schema["additionalProperties"] == {"type": "string", "maxLength": 65535}
    assert schema["links"] == [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                               {"rel": "describedby", "href": "{schema}"}]


def test_images_schema(client, auth):
    response = client.get("/v2/schemas/images", headers=auth)
    assert response.status_code == 200
    schema = response.get_json()
    assert schema["name"] == "images"
    assert set(schema["properties"]) == {"images", "first", "next", "schema"}
    assert schema["properties"]["images"]["type"] == "array"
    assert schema["properties"]["images"]["items"] == client.get("/v2/schemas/image", headers=auth).get_json()
    assert schema["links"] == [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                               {"rel": "describedby", "href": "{schema}"}]


@pytest.mark.parametrize("name, keys", [("member", {"image_id", "member_id", "status", "created_at",
                                                    "updated_at", "schema"}),
                                        ("members", {"members", "schema"})])
def test_member_schemas(client, auth, name, keys):
    response = client.get(f"/v2/schemas/{name}", headers=auth)
    assert response.status_code == 200
    assert response.get_json()["name"] == name
    assert set(response.get_json()["properties"]) == keys


def test_schema_needs_token(client):
    assert client.get("/v2/schemas/image").status_code == 401


def test_unknown_schema_is_404(client, auth):
    assert client.get("/v2/schemas/bogus", headers=auth).status_code == 404


# --------------------------------------------------------------------------- /v2/info


def test_info_stores(client, auth):
    response = client.get("/v2/info/stores", headers=auth)
    assert response.status_code == 200
    assert response.get_json() == {"stores": [{"id": "local", "default": "true"}, {"id": "slow"}]}


@with_env(IMAGEDATA_DEFAULT_STORE="slow")
def test_info_stores_flags_configured_default(client, auth):
    stores = client.get("/v2/info/stores", headers=auth).get_json()["stores"]
    assert stores == [{"id": "local"}, {"id": "slow", "default": "true"}]


def test_info_stores_for_any_authenticated_user(client, make_token):
    reader = {"X-Auth-Token": make_token("p9", ("reader",))}
    assert client.get("/v2/info/stores", headers=reader).status_code == 200
    assert client.get("/v2/info/stores").status_code == 401


def test_info_stores_with_body_is_400(client, auth):
    response = client.get("/v2/info/stores", data=b"{}", headers=auth, content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("roles", [("member", "reader"), ("reader",)])
def test_info_stores_detail_needs_admin(client, make_token, roles):
    headers = {"X-Auth-Token": make_token("p1", roles)}
    assert client.get("/v2/info/stores/detail", headers=headers).status_code == 403


@pytest.mark.parametrize("roles", [("admin",), ("service",)])
def test_info_stores_detail(client, make_token, tmp_path, roles):
    headers = {"X-Auth-Token": make_token("ops", roles)}
    response = client.get("/v2/info/stores/detail", headers=headers)
    assert response.status_code == 200
    stores = response.get_json()["stores"]
    assert [store["id"] for store in stores] == ["local", "slow"]
    assert stores[0]["default"] == "true" and "default" not in stores[1]
    for store in stores:
        assert store["type"] == "file"
        assert store["weight"] == 0
        assert store["properties"]["data_dir"] == str(tmp_path / "stores" / store["id"])
        assert isinstance(store["properties"]["chunk_size"], int)
        assert store["properties"]["thin_provisioning"] is False


def test_info_import(client, auth):
    response = client.get("/v2/info/import", headers=auth)
    assert response.status_code == 200
    assert response.get_json() == {"import-methods": {"description": "Import methods available.", "type": "array",
                                                      "value": ["glance-direct", "web-download", "copy-image"]}}


@with_env(IMAGEDATA_IMPORT_METHODS="")
def test_info_import_when_import_is_off(client, auth):
    response = client.get("/v2/info/import", headers=auth)
    assert response.get_json()["import-methods"]["value"] == []
    created = client.post("/v2/images", json={"name": "x"}, headers=auth)
    assert "OpenStack-image-import-methods" not in created.headers
    image_id = created.get_json()["id"]
    staged = client.put(f"/v2/images/{image_id}/stage", data=b"x", headers={**auth, "Accept": "application/json",
                                                                             "Content-Type": "application/octet-stream"})
    assert staged.status_code == 404  # as Glance answers with glance-direct off; the message says what to do
    message = staged.get_json()["message"] if staged.is_json else staged.get_data(as_text=True)
    assert f"PUT /v2/images/{image_id}/file" in message and "IMAGEDATA_IMPORT_METHODS" in message
    started = client.post(f"/v2/images/{image_id}/import", json={"method": {"name": "web-download", "uri": "x"}},
                          headers={**auth, "Accept": "application/json"})
    assert started.status_code == 400 and "IMAGEDATA_IMPORT_METHODS" in started.get_data(as_text=True)


def test_info_usage(client, auth, active):
    response = client.get("/v2/info/usage", headers=auth)
    assert response.status_code == 200
    usage = response.get_json()["usage"]
    assert usage["image_size_total"] == {"limit": -1, "usage": 26}
    assert usage["image_count_total"] == {"limit": -1, "usage": 1}
    assert usage["image_count_uploading"] == {"limit": -1, "usage": 0}


# --------------------------------------------------------------------------- health


def test_healthcheck_without_auth(client):
    response = client.get("/healthcheck")
    assert response.status_code == 200
    assert response.data == b"OK\n"
    assert response.mimetype == "text/plain"


def test_healthcheck_reports_missing_store(client, tmp_path):
    shutil.rmtree(tmp_path / "stores" / "slow")
    response = client.get("/healthcheck")
    assert response.status_code == 503
    assert "slow" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- error bodies


def _error_requests(client, auth, image_id):
    """(name, expected status, title, callable(accept headers) -> response)."""
    missing = str(uuid.uuid4())
    return {
        "404-image": (404, "Not Found", lambda h: client.get(f"/v2/images/{missing}", headers={**auth, **h})),
        "404-route": (404, "Not Found", lambda h: client.get("/v2/no/such/route", headers={**auth, **h})),
        "404-route-no-auth": (404, "Not Found", lambda h: client.get("/v2/nothing", headers=h)),
        "405": (405, "Method Not Allowed",
                lambda h: client.post(f"/v2/images/{image_id}/file", headers={**auth, **h})),
        "401": (401, "Unauthorized", lambda h: client.get("/v2/images", headers=h)),
        "400": (400, "Bad Request", lambda h: client.post("/v2/images", data=b"{", headers={
            **auth, **h, "Content-Type": "application/json"})),
        "403": (403, "Forbidden", lambda h: client.post("/v2/images", json={"status": "x"},
                                                        headers={**auth, **h})),
        "409": (409, "Conflict", lambda h: client.put(f"/v2/images/{image_id}/file", data=b"x", headers={
            **auth, **h, "Content-Type": OCTET})),
        "415": (415, "Unsupported Media Type", lambda h: client.put(f"/v2/images/{image_id}/file", data=b"x",
                                                                    headers={**auth, **h,
                                                                             "Content-Type": "text/plain"})),
        "416": (416, "Requested Range Not Satisfiable",
                lambda h: client.get(f"/v2/images/{image_id}/file", headers={**auth, **h, "Range": "bytes=99-"})),
    }


ERROR_CASES = ["404-image", "404-route", "404-route-no-auth", "405", "401", "400", "403", "409", "415", "416"]


@pytest.mark.parametrize("accept", ["application/json", "text/html, application/json;q=0.5",
                                    "application/json, */*"])
@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_body_json_when_asked(client, auth, active, case, accept):
    status, title, send = _error_requests(client, auth, active)[case]
    response = send({"Accept": accept})
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"message", "code", "title"}
    assert body["code"] == f"{status} {title}"
    assert body["title"] == title
    assert isinstance(body["message"], str) and body["message"]
    assert "<" not in body["message"]


@pytest.mark.parametrize("accept", [None, "", "*/*", "text/html", "text/html,application/xhtml+xml,*/*;q=0.8",
                                    "application/*", "application/json;q=0", "text/plain"])
@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_body_text_otherwise(client, auth, active, case, accept):
    status, title, send = _error_requests(client, auth, active)[case]
    response = send({} if accept is None else {"Accept": accept})
    assert response.status_code == status
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert text.startswith(f"{status} {title}")
    assert "<html" not in text.lower() and "<br" not in text


def test_404_json_example(client, auth):
    """Conformance test 79, spelled out."""
    image_id = str(uuid.uuid4())
    response = client.get(f"/v2/images/{image_id}", headers={**auth, "Accept": "application/json"})
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"message": f"No image found with ID {image_id}", "code": "404 Not Found",
                                   "title": "Not Found"}
    plain = client.get(f"/v2/images/{image_id}", headers=auth)
    assert plain.headers["Content-Type"].startswith("text/plain")
    assert plain.get_data(as_text=True).startswith("404 Not Found")


@pytest.mark.parametrize("method, path, allowed", [
    ("POST", "/v2/images/{id}/file", {"GET", "PUT"}),
    ("DELETE", "/v2/images/{id}/file", {"GET", "PUT"}),
    ("PUT", "/v2/images/{id}", {"GET", "PATCH", "DELETE"}),
    ("POST", "/v2/images/{id}", {"GET", "PATCH", "DELETE"}),
    ("DELETE", "/v2/images", {"GET", "POST"}),
    ("PUT", "/v2/images", {"GET", "POST"}),
    ("GET", "/v2/images/{id}/actions/deactivate", {"POST"}),
    ("POST", "/v2/info/stores", {"GET"}),
])
@pytest.mark.parametrize("accept", [None, "application/json"])
def test_405_has_allow_header(client, auth, active, method, path, allowed, accept):
    headers = dict(auth)
    if accept:
        headers["Accept"] = accept
    response = client.open(path.format(id=active), method=method, headers=headers)
    assert response.status_code == 405
    answered = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed <= answered
    assert method not in answered
    assert "OPTIONS" not in answered
    if accept:
        assert response.get_json()["code"] == "405 Method Not Allowed"
    else:
        assert response.get_data(as_text=True).startswith("405 Method Not Allowed")


def test_415_patch_error_keeps_accept_patch_in_json(client, auth, active):
    response = client.patch(f"/v2/images/{active}", data=b"[]",
                            headers={**auth, "Content-Type": "application/json", "Accept": "application/json"})
    assert response.status_code == 415
    assert response.get_json()["code"] == "415 Unsupported Media Type"
    assert "application/openstack-images-v2.1-json-patch" in response.headers["Accept-Patch"]


def test_416_error_keeps_content_range_in_json(client, auth, active):
    response = client.get(f"/v2/images/{active}/file",
                          headers={**auth, "Range": "bytes=26-", "Accept": "application/json"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */26"
    assert response.get_json()["code"] == "416 Requested Range Not Satisfiable"


# --------------------------------------------------------------------------- request ids


def _requests(client, auth, image_id):
    return {
        "root-300": lambda h: client.get("/", headers=h),
        "versions-200": lambda h: client.get("/versions", headers=h),
        "health-200": lambda h: client.get("/healthcheck", headers=h),
        "list-200": lambda h: client.get("/v2/images", headers={**auth, **h}),
        "create-201": lambda h: client.post("/v2/images", json={}, headers={**auth, **h}),
        "file-200": lambda h: client.get(f"/v2/images/{image_id}/file", headers={**auth, **h}),
        "file-206": lambda h: client.get(f"/v2/images/{image_id}/file", headers={**auth, **h, "Range": "bytes=0-1"}),
        "file-head": lambda h: client.head(f"/v2/images/{image_id}/file", headers={**auth, **h}),
        "tag-204": lambda h: client.put(f"/v2/images/{image_id}/tags/t", headers={**auth, **h}),
        "schema-200": lambda h: client.get("/v2/schemas/image", headers={**auth, **h}),
        "stores-200": lambda h: client.get("/v2/info/stores", headers={**auth, **h}),
        "400": lambda h: client.post("/v2/images", data=b"{", headers={**auth, **h,
                                                                       "Content-Type": "application/json"}),
        "401": lambda h: client.get("/v2/images", headers=h),
        "404": lambda h: client.get(f"/v2/images/{uuid.uuid4()}", headers={**auth, **h}),
        "404-route": lambda h: client.get("/v2/nothing", headers=h),
        "405": lambda h: client.post(f"/v2/images/{image_id}/file", headers={**auth, **h}),
        "409": lambda h: client.put(f"/v2/images/{image_id}/file", data=b"x",
                                    headers={**auth, **h, "Content-Type": OCTET}),
        "415": lambda h: client.put(f"/v2/images/{image_id}/file", data=b"x", headers={**auth, **h}),
        "416": lambda h: client.get(f"/v2/images/{image_id}/file", headers={**auth, **h, "Range": "bytes=-0"}),
    }


REQUEST_CASES = ["root-300", "versions-200", "health-200", "list-200", "create-201", "file-200", "file-206",
                 "file-head", "tag-204", "schema-200", "stores-200", "400", "401", "404", "404-route", "405",
                 "409", "415", "416"]


@pytest.mark.parametrize("case", REQUEST_CASES)
def test_every_response_has_request_id(client, auth, active, case):
    send = _requests(client, auth, active)[case]
    first, second = send({}), send({})
    assert REQUEST_ID.match(first.headers["x-openstack-request-id"])
    assert first.headers["x-openstack-request-id"] != second.headers["x-openstack-request-id"]


@pytest.mark.parametrize("case", REQUEST_CASES)
def test_client_request_id_is_echoed_with_prefix(client, auth, active, case):
    send = _requests(client, auth, active)[case]
    assert send({"X-Openstack-Request-ID": "abc"}).headers["x-openstack-request-id"] == "req-abc"


@pytest.mark.parametrize("sent, echoed", [
    ("abc", "req-abc"),
    ("req-abc", "req-abc"),
    ("req-3f0e9a62-8e0b-4a26-b8e6-0c3f3c2f8f5e", "req-3f0e9a62-8e0b-4a26-b8e6-0c3f3c2f8f5e"),
    ("x" * 64, "req-" + "x" * 64),
])
def test_client_request_id_forms(client, auth, sent, echoed):
    response = client.get("/v2/images", headers={**auth, "X-Openstack-Request-ID": sent})
    assert response.headers["x-openstack-request-id"] == echoed


@pytest.mark.parametrize("sent", ["x" * 65, ""])
def test_unusable_client_request_id_is_replaced(client, auth, sent):
    response = client.get("/v2/images", headers={**auth, "X-Openstack-Request-ID": sent})
    assert REQUEST_ID.match(response.headers["x-openstack-request-id"])


def test_the_docs_list_the_missing_versions():
    """docs/api.rst (API versions and coverage) names every version not advertised, and the advertised ones."""
    from imagedata.api.versions import ADVERTISED, API_VERSIONS
    from tests.literal import read_doc

    section = read_doc("docs/api.rst").split("API versions and coverage\n", 1)[1].split("\nListing images\n", 1)[0]
    assert ", ".join(ADVERTISED[:-1]) + f" and {ADVERTISED[-1]} (``CURRENT``)" in " ".join(section.split())
    missing = [version for version, parts in API_VERSIONS if not all(present for _, present in parts)]
    listed = [line for line in section.splitlines() if line.startswith("- v2.")]
    assert sorted(v for line in listed for v in line[2:].split(":")[0].split(", ")) == sorted(missing)
