"""One description of the image: /v2/schemas/*, /v2/openapi.json and the server's validation agree.

The documents are compared property by property, and then every writable attribute is tried
with values built from its documented type, enumeration and bounds (each bound, one past it, the
wrong types, null): the server accepts a value (create and PATCH) exactly when both documents
do. Images the server returns validate against both documents.
"""
from __future__ import annotations

import uuid

import jsonschema
import pytest

from imagedata.schemas import BASE_ATTRIBUTES, IMAGE_OUT, READ_ONLY, RESERVED

# Documents and validation, which run before the database: SQLite only (test_fuzz_strings.py
# runs the text checks on both databases).
DB_BACKENDS = ("sqlite",)
JSON = {"Accept": "application/json"}
PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch", **JSON}
# Facts of Glance's image schema this service keeps (types and read-only flags; bounds may only add).
GLANCE_TYPES = {
    "id": "string", "name": ["null", "string"], "status": "string", "visibility": "string", "protected": "boolean",
    "os_hidden": "boolean", "checksum": ["null", "string"], "os_hash_algo": ["null", "string"],
    "os_hash_value": ["null", "string"], "owner": ["null", "string"], "size": ["null", "integer"],
    "virtual_size": ["null", "integer"], "container_format": ["null", "string"], "disk_format": ["null", "string"],
    "created_at": "string", "updated_at": "string", "tags": "array", "direct_url": "string", "min_ram": "integer",
    "min_disk": "integer", "self": "string", "file": "string", "stores": "string", "schema": "string",
    "locations": "array",
}
GLANCE_MAX_LENGTH = {"name": 255, "checksum": 32, "os_hash_algo": 64, "os_hash_value": 128, "owner": 255}


@pytest.fixture
def admin(admin_token):
    return {"X-Auth-Token": admin_token, **JSON}


@pytest.fixture
def docs(client, admin):
    """(Glance-dialect image schema, OpenAPI document)."""
    return client.get("/v2/schemas/image", headers=admin).get_json(), client.get("/v2/openapi.json").get_json()


def as_glance(prop: dict) -> dict:
    """An OpenAPI 3.0 property in Glance's dialect (nullable -> a type list with null)."""
    out = {k: v for k, v in prop.items() if k != "nullable"}
    if prop.get("nullable"):
        out["type"] = ["null", prop["type"]]
        if "enum" in prop:
            out["enum"] = [None, *prop["enum"]]
    if isinstance(out.get("items"), dict):
        out["items"] = as_glance(out["items"])
    return out


def test_the_image_documents_agree(docs):
    glance, openapi = docs
    schemas = openapi["components"]["schemas"]
    image, write = schemas["Image"], schemas["ImageWrite"]
    assert {k: as_glance(v) for k, v in image["properties"].items()} == glance["properties"]
    writable = {k for k, v in glance["properties"].items() if not v.get("readOnly") and k not in RESERVED}
    assert set(write["properties"]) == writable
    for name, prop in write["properties"].items():
        assert as_glance(prop) == glance["properties"][name], name
    assert {k for k, v in glance["properties"].items() if v.get("readOnly")} == set(READ_ONLY)
    assert image["additionalProperties"] == write["additionalProperties"] == glance["additionalProperties"]


def test_the_image_schema_keeps_glance_types_and_bounds(docs):
    glance, _ = docs
    properties = glance["properties"]
    assert {k: v["type"] for k, v in properties.items()} == GLANCE_TYPES
    for name, limit in GLANCE_MAX_LENGTH.items():
        assert properties[name]["maxLength"] == limit, name
    assert properties["tags"]["items"]["maxLength"] == 255


def test_the_member_documents_agree(client, admin):
    member = client.get("/v2/schemas/member", headers=admin).get_json()["properties"]
    schemas = client.get("/v2/openapi.json").get_json()["components"]["schemas"]
    assert {k: as_glance(v) for k, v in schemas["Member"]["properties"].items()} == member
    bare = lambda prop: {k: v for k, v in prop.items() if k != "description"}  # noqa: E731
    assert bare(schemas["MemberCreate"]["properties"]["member"]) == bare(member["member_id"])
    assert bare(schemas["MemberUpdate"]["properties"]["status"]) == bare(member["status"])


def samples(prop: dict) -> list:
    """Values probing ``prop``: each enum value, each bound and one past it, other types, null."""
    kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    kind = next(k for k in kinds if k != "null")
    out: list = [None, 5, 1.5, True, "text", [], {}]
    out += [v for v in prop.get("enum", []) if v is not None] + (["bogus"] if "enum" in prop else [])
    if "maxLength" in prop:
        out += ["x" * prop["maxLength"], "x" * (prop["maxLength"] + 1)]
    if "minLength" in prop:
        out += ["x" * prop["minLength"], "x" * (prop["minLength"] - 1)]
    if "pattern" in prop:
        out += [str(uuid.uuid4()), str(uuid.uuid4()).upper(), "not-a-uuid"]
    if kind == "integer":
        out += [0, -1, 2**40, "1", prop["minimum"], prop["minimum"] - 1, prop["maximum"], prop["maximum"] + 1]
    if kind == "array":
        out += [[item] for item in samples(prop["items"])] + [["a", "a"], ["a", "b"]]
    if kind == "boolean":
        out += [False, "true", 0, 1]
    return out


def valid(prop: dict, value) -> bool:
    return jsonschema.Draft4Validator(prop).is_valid(value)


def writable(glance: dict) -> dict:
    return {k: v for k, v in glance["properties"].items() if not v.get("readOnly") and k not in RESERVED}


def test_create_accepts_exactly_what_the_documents_allow(client, admin, docs):
    glance, openapi = docs
    write = openapi["components"]["schemas"]["ImageWrite"]["properties"]
    checked = 0
    for name, prop in writable(glance).items():
        for value in samples(prop):
            expected = valid(prop, value)
            assert valid(as_glance(write[name]), value) == expected, (name, value)
            body = {name: value}
            response = client.post("/v2/images", json=body, headers=admin)
            assert response.status_code == (201 if expected else 400), (name, value, response.get_json())
            if expected:
                jsonschema.Draft4Validator(glance).validate(response.get_json())
            checked += 1
    assert checked > 100


def test_patch_accepts_exactly_what_the_documents_allow(client, admin, docs):
    glance, _ = docs
    image_id = client.post("/v2/images", json={}, headers=admin).get_json()["id"]
    for name, prop in writable(glance).items():
        if name == "id":
            continue  # read-only once the image exists (403)
        for value in samples(prop):
            ops = [{"op": "replace", "path": f"/{name}", "value": value}]
            response = client.patch(f"/v2/images/{image_id}", json=ops, headers={**admin, **PATCH})
            assert response.status_code == (200 if valid(prop, value) else 400), (name, value, response.get_json())
            if response.status_code == 200:
                jsonschema.Draft4Validator(glance).validate(response.get_json())
    client.patch(f"/v2/images/{image_id}", json=[{"op": "replace", "path": "/protected", "value": False}],
                 headers={**admin, **PATCH})


@pytest.mark.parametrize("value", ["v", "", "x" * 65535, "x" * 65536, 5, None, True, ["v"], {"k": "v"}])
def test_extra_properties_are_what_additional_properties_says(client, admin, docs, value):
    glance, _ = docs
    response = client.post("/v2/images", json={"extra": value}, headers=admin)
    assert response.status_code == (201 if valid(glance["additionalProperties"], value) else 400), response.data


def test_member_bodies_accept_exactly_what_the_documents_allow(client, admin, new_image):
    schemas = client.get("/v2/openapi.json").get_json()["components"]["schemas"]
    create = schemas["MemberCreate"]
    for value in samples(create["properties"]["member"]):
        image_id = new_image(headers=admin)["id"]
        response = client.post(f"/v2/images/{image_id}/members", json={"member": value}, headers=admin)
        expected = jsonschema.Draft4Validator(create).is_valid({"member": value})
        assert response.status_code == (200 if expected else 400), (value, response.get_json())
    response = client.post(f"/v2/images/{image_id}/members", json={"member": "p9", "extra": 1}, headers=admin)
    assert response.status_code == 400  # additionalProperties: false


def test_the_image_json_has_the_documented_base_keys(client, admin):
    image = client.post("/v2/images", json={}, headers=admin).get_json()
    assert set(image) == set(BASE_ATTRIBUTES) == set(IMAGE_OUT.fields)
