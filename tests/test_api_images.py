"""Image records through the Flask client: create, show, list, PATCH, tags and delete.

Behaviour follows Glance's Image API v2 (spec: /work/shared/spec/glance-behavior.md §2 and the
conformance tests of §9) with this service's deliberate differences: token auth, visibility
default ``shared``, and ``stores`` shown only once an image has data.
"""
from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.conftest import store_files

BASE_KEYS = {
    "id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
    "os_hash_value", "size", "virtual_size", "disk_format", "container_format", "min_disk", "min_ram",
    "owner", "tags", "created_at", "updated_at", "self", "file", "schema",
}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
PATCH_21 = "application/openstack-images-v2.1-json-patch"
PATCH_20 = "application/openstack-images-v2.0-json-patch"
READ_ONLY = ("status", "checksum", "size", "virtual_size", "os_hash_algo", "os_hash_value", "created_at",
             "updated_at", "self", "file", "schema", "stores", "direct_url")
RESERVED = ("location", "locations", "deleted", "deleted_at", "os_glance_x", "os_glance_import_task")


# --------------------------------------------------------------------------- helpers


def patch(client, image_id, ops, headers, media_type=PATCH_21):
    """PATCH an image with a JSON-patch document of ``media_type``."""
    return client.patch(f"/v2/images/{image_id}", data=json.dumps(ops),
                        headers={**headers, "Content-Type": media_type})


def show(client, image_id, headers):
    response = client.get(f"/v2/images/{image_id}", headers=headers)
    assert response.status_code == 200, response.data
    return response.get_json()


def listing(client, headers, query=""):
    response = client.get(f"/v2/images{query}", headers=headers)
    assert response.status_code == 200, response.data
    return response.get_json()


def listed_ids(client, headers, query=""):
    return [image["id"] for image in listing(client, headers, query)["images"]]


def all_pages(client, headers, query):
    """Follow ``next`` links from ``/v2/images?<query>`` and return every image, in order."""
    url, images, pages = f"/v2/images?{query}", [], 0
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.data
        body = response.get_json()
        images += body["images"]
        url = body.get("next")
        pages += 1
        assert pages < 100, "pagination does not terminate"
    return images


@pytest.fixture
def reader(make_token):
    """A reader-only user of p1 (the owner project of the default images)."""
    return {"X-Auth-Token": make_token("p1", ("reader",))}


@pytest.fixture
def other(make_token):
    """A member of project p2."""
    return {"X-Auth-Token": make_token("p2")}


@pytest.fixture
def admin(admin_token):
    return {"X-Auth-Token": admin_token}


# --------------------------------------------------------------------------- create


def test_create_returns_queued_image_with_exact_fields(client, auth):
    response = client.post("/v2/images", json={"name": "a"}, headers=auth)
    assert response.status_code == 201
    image = response.get_json()
    assert set(image) == BASE_KEYS
    image_id = image["id"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", image_id)
    assert image == {
        "id": image_id, "name": "a", "status": "queued", "visibility": "shared", "protected": False,
        "os_hidden": False, "checksum": None, "os_hash_algo": None, "os_hash_value": None, "size": None,
        "virtual_size": None, "disk_format": None, "container_format": None, "min_disk": 0, "min_ram": 0,
        "owner": "p1", "tags": [], "created_at": image["created_at"], "updated_at": image["updated_at"],
        "self": f"/v2/images/{image_id}", "file": f"/v2/images/{image_id}/file",
        "schema": "/v2/schemas/image",
    }
    assert TIMESTAMP.match(image["created_at"])
    assert image["created_at"] == image["updated_at"]
    assert response.headers["Location"] == f"http://localhost/v2/images/{image_id}"
    assert response.headers["Content-Type"] == "application/json"


def test_create_shows_extra_properties_and_tags(client, auth):
    body = {"name": "x", "disk_format": "qcow2", "container_format": "bare", "custom_prop": "x",
            "other": "", "tags": ["b", "a", "b"], "min_ram": 512, "min_disk": 3, "os_hidden": True,
            "protected": True, "visibility": "private"}
    response = client.post("/v2/images", json=body, headers=auth)
    assert response.status_code == 201
    image = response.get_json()
    assert set(image) == BASE_KEYS | {"custom_prop", "other"}
    assert image["custom_prop"] == "x" and image["other"] == ""
    assert sorted(image["tags"]) == ["a", "b"]
    assert (image["min_ram"], image["min_disk"], image["os_hidden"], image["protected"]) == (512, 3, True, True)
    assert image["visibility"] == "private"
    assert show(client, image["id"], auth) == image


def test_create_with_client_id(client, auth):
    image_id = str(uuid.uuid4())
    response = client.post("/v2/images", json={"id": image_id}, headers=auth)
    assert response.status_code == 201
    assert response.get_json()["id"] == image_id


def test_create_advertises_store_ids(client, auth):
    response = client.post("/v2/images", json={}, headers=auth)
    assert response.status_code == 201
    assert response.headers["OpenStack-image-store-ids"] == "local,slow"


@pytest.mark.parametrize("body", [
    {"disk_format": "foo"},
    {"container_format": "foo"},
    {"visibility": "everyone"},
    {"name": "n" * 256},
    {"foo": 5},
    {"foo": None},
    {"foo": ["a"]},
    {"k" * 256: "v"},
    {"id": "not-a-uuid"},
    {"protected": "true"},
    {"os_hidden": 1},
    {"min_ram": -1},
    {"min_disk": "1"},
    {"min_disk": 1.5},
    {"tags": "a"},
    {"tags": ["t" * 256]},
    {"owner": "o" * 256},
], ids=lambda body: next(iter(body))[:20])
def test_create_schema_violation_is_400(client, auth, body):
    response = client.post("/v2/images", json=body, headers=auth)
    assert response.status_code == 400, response.data


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"[]", b"\"name\"", b"42", b"null"])
def test_create_bad_body_is_400(client, auth, raw):
    response = client.post("/v2/images", data=raw, headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 400, response.data


@pytest.mark.parametrize("attribute", READ_ONLY)
def test_create_read_only_attribute_is_403(client, auth, attribute):
    response = client.post("/v2/images", json={attribute: "x"}, headers={**auth, "Accept": "application/json"})
    assert response.status_code == 403
    assert response.get_json()["message"] == f"Attribute '{attribute}' is read-only."


@pytest.mark.parametrize("attribute", RESERVED)
def test_create_reserved_attribute_is_403(client, auth, attribute):
    response = client.post("/v2/images", json={attribute: "1"}, headers=auth)
    assert response.status_code == 403


def test_create_property_quota_is_413(client, auth):
    body = {f"p{i}": "v" for i in range(128)}
    assert client.post("/v2/images", json=body, headers=auth).status_code == 201
    body["p128"] = "v"
    assert client.post("/v2/images", json=body, headers=auth).status_code == 413


def test_create_tag_quota_is_413(client, auth):
    tags = [f"t{i}" for i in range(128)]
    assert client.post("/v2/images", json={"tags": tags}, headers=auth).status_code == 201
    assert client.post("/v2/images", json={"tags": tags + ["one-more"]}, headers=auth).status_code == 413


def test_create_public_needs_admin(client, auth, admin):
    assert client.post("/v2/images", json={"visibility": "public"}, headers=auth).status_code == 403
    response = client.post("/v2/images", json={"visibility": "public"}, headers=admin)
    assert response.status_code == 201
    assert response.get_json()["visibility"] == "public"


def test_create_community_by_owner_member(client, auth):
    response = client.post("/v2/images", json={"visibility": "community"}, headers=auth)
    assert response.status_code == 201
    assert response.get_json()["visibility"] == "community"


def test_create_for_another_owner_needs_admin(client, auth, admin):
    assert client.post("/v2/images", json={"owner": "p2"}, headers=auth).status_code == 403
    assert client.post("/v2/images", json={"owner": "p1"}, headers=auth).status_code == 201
    response = client.post("/v2/images", json={"owner": "p2"}, headers=admin)
    assert response.status_code == 201
    assert response.get_json()["owner"] == "p2"


def test_create_by_reader_is_403(client, reader):
    assert client.post("/v2/images", json={"name": "r"}, headers=reader).status_code == 403


def test_create_without_token_is_401(client, make_token):
    assert client.post("/v2/images", json={}).status_code == 401
    assert client.post("/v2/images", json={}, headers={"X-Auth-Token": "idt_nope"}).status_code == 401
    expired = make_token("p1", expires_in=-10)
    assert client.post("/v2/images", json={}, headers={"X-Auth-Token": expired}).status_code == 401


def test_create_duplicate_id_is_409(client, auth, new_image):
    image = new_image()
    response = client.post("/v2/images", json={"id": image["id"]}, headers=auth)
    assert response.status_code == 409
    assert show(client, image["id"], auth)["name"] == "test"


# --------------------------------------------------------------------------- show


def test_show_returns_created_image(client, auth, new_image):
    image = new_image(custom_prop="x")
    assert show(client, image["id"], auth) == image


def test_show_accepts_uppercase_id(client, auth, new_image):
    image = new_image()
    assert show(client, image["id"].upper(), auth)["id"] == image["id"]


@pytest.mark.parametrize("image_id", [str(uuid.uuid4()), "nope", "x" * 40])
def test_show_unknown_is_404(client, auth, image_id):
    assert client.get(f"/v2/images/{image_id}", headers=auth).status_code == 404


def test_show_with_body_is_400(client, auth, new_image):
    image = new_image()
    response = client.get(f"/v2/images/{image['id']}", data=b'{"a": 1}', headers=auth,
                          content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("visibility, status", [("private", 404), ("shared", 404), ("public", 200),
                                                ("community", 200)])
def test_show_other_projects_image_by_visibility(client, admin, other, new_image, visibility, status):
    image = new_image(headers=admin, owner="p1", visibility=visibility)
    assert client.get(f"/v2/images/{image['id']}", headers=other).status_code == status


def test_show_by_reader_owner_is_200(client, reader, new_image):
    image = new_image()
    assert client.get(f"/v2/images/{image['id']}", headers=reader).status_code == 200


def test_show_by_user_without_roles_is_404(client, make_token, new_image):
    image = new_image()
    roleless = {"X-Auth-Token": make_token("p1", ())}
    assert client.get(f"/v2/images/{image['id']}", headers=roleless).status_code == 404


def test_admin_sees_everything(client, admin, new_image):
    image = new_image(visibility="private")
    assert show(client, image["id"], admin)["owner"] == "p1"


def test_stores_shown_only_once_data_exists(client, auth, new_image, upload):
    image = new_image()
    assert "stores" not in show(client, image["id"], auth)
    assert upload(image["id"], b"data").status_code == 204
    shown = show(client, image["id"], auth)
    assert set(shown) == BASE_KEYS | {"stores"}
    assert shown["stores"] == "local"
    listed = listing(client, auth)["images"]
    assert listed[0]["stores"] == "local"


# --------------------------------------------------------------------------- list


def test_list_empty(client, auth):
    assert listing(client, auth) == {"images": [], "first": "/v2/images", "schema": "/v2/schemas/images"}


def test_list_page_links(client, auth, new_image):
    older, newer = new_image(name="one"), new_image(name="two")
    body = listing(client, auth, "?limit=1")
    assert set(body) == {"images", "first", "schema", "next"}
    assert body["first"] == "/v2/images?limit=1"
    assert body["schema"] == "/v2/schemas/images"
    first_id = body["images"][0]["id"]
    assert body["next"] == f"/v2/images?limit=1&marker={first_id}"
    assert {first_id} < {older["id"], newer["id"]}
    rest = client.get(body["next"], headers=auth).get_json()
    assert rest["first"] == "/v2/images?limit=1"
    second_id = rest["images"][0]["id"]
    assert {first_id, second_id} == {older["id"], newer["id"]}
    # a full page always offers `next`; the page after the last is empty and has none
    last = client.get(rest["next"], headers=auth).get_json()
    assert last["images"] == [] and "next" not in last


def test_list_partial_page_has_no_next(client, auth, new_image):
    new_image()
    body = listing(client, auth, "?limit=5")
    assert len(body["images"]) == 1
    assert "next" not in body


def test_list_items_have_image_fields(client, auth, new_image):
    image = new_image(custom_prop="x")
    assert listing(client, auth)["images"] == [image]


def test_list_default_limit_is_25(client, auth, new_image):
    for i in range(27):
        new_image(name=f"i{i}")
    body = listing(client, auth)
    assert len(body["images"]) == 25
    assert "next" in body


def test_list_marker_pagination_visits_each_image_once(client, auth, new_image):
    created = [new_image(name=f"img{i:02d}")["id"] for i in range(23)]
    images = all_pages(client, auth, "limit=4")
    ids = [image["id"] for image in images]
    assert sorted(ids) == sorted(created)
    assert len(ids) == len(set(ids))
    keys = [(image["created_at"], image["id"]) for image in images]
    assert keys == sorted(keys, reverse=True)  # default: created_at desc, ties by id


@pytest.mark.parametrize("query, key, reverse", [
    ("sort_key=name&sort_dir=asc", "name", False),
    ("sort_key=name&sort_dir=desc", "name", True),
    ("sort=name:asc", "name", False),
    ("sort=name:desc,created_at:asc", "name", True),
    ("sort_key=size&sort_dir=asc", "size", False),
    ("sort_key=size&sort_dir=desc", "size", True),
    ("sort_key=min_ram", "min_ram", True),
])
def test_list_sorted_pagination(client, auth, new_image, upload, query, key, reverse):
    names = ["b", "a", "c", "a", "b", "d", "a", "c"]
    created = []
    for i, name in enumerate(names):
        image = new_image(name=name, min_ram=i % 3)
        created.append(image["id"])
        if i % 2:
            assert upload(image["id"], b"x" * (i % 5)).status_code == 204
    images = all_pages(client, auth, f"{query}&limit=3")
    ids = [image["id"] for image in images]
    assert sorted(ids) == sorted(created) and len(set(ids)) == len(ids)
    values = [-1 if image[key] is None else image[key] for image in images]
    assert values == sorted(values, reverse=reverse)


@pytest.mark.parametrize("query", [
    "sort_key=bogus", "sort_dir=sideways", "sort=name:up", "sort=bogus:asc",
    "sort=name:asc&sort_key=name", "limit=-1", "limit=abc", f"marker={uuid.uuid4()}",
    "visibility=bogus", "member_status=bogus", "os_hidden=yes", "os_hidden=1",
    "protected=1", "protected=maybe", "protected=True", "size_min=abc", "changes-since=2020-01-01T00:00:00Z",
])
def test_list_invalid_query_is_400(client, auth, query):
    """Glance 33 answers `status=bogus` and `size_max=-5` with 200 and no image (tests/test_list_filters.py)."""
    assert client.get(f"/v2/images?{query}", headers=auth).status_code == 400


def test_list_marker_must_be_visible(client, auth, other, new_image):
    """A marker naming an image the caller cannot see is as invalid as an unknown one."""
    hidden = new_image(visibility="private")["id"]
    new_image(headers=other)
    response = client.get(f"/v2/images?marker={hidden}", headers=other)
    assert response.status_code == 400


def test_list_marker_of_deleted_image_is_400(client, auth, new_image):
    gone = new_image()["id"]
    assert client.delete(f"/v2/images/{gone}", headers=auth).status_code == 204
    assert client.get(f"/v2/images?marker={gone}", headers=auth).status_code == 400


def test_list_filter_name_and_property(client, auth, new_image):
    a = new_image(name="alpha", custom_prop="x")
    new_image(name="beta", custom_prop="y")
    assert listed_ids(client, auth, "?name=alpha") == [a["id"]]
    assert listed_ids(client, auth, "?custom_prop=x") == [a["id"]]
    assert listed_ids(client, auth, "?name=gamma") == []


def test_list_filter_status(client, auth, new_image, upload):
    queued, active = new_image(), new_image()
    assert upload(active["id"], b"abc").status_code == 204
    assert listed_ids(client, auth, "?status=active") == [active["id"]]
    assert listed_ids(client, auth, "?status=queued") == [queued["id"]]


def test_list_filter_size(client, auth, new_image, upload):
    small, big = new_image(), new_image()
    assert upload(small["id"], b"a").status_code == 204
    assert upload(big["id"], b"a" * 10).status_code == 204
    assert listed_ids(client, auth, "?size_min=5") == [big["id"]]
    assert listed_ids(client, auth, "?size_max=5") == [small["id"]]


def test_list_filter_visibility(client, auth, new_image):
    ids = {v: new_image(visibility=v)["id"] for v in ("private", "shared", "community")}
    for visibility, image_id in ids.items():
        assert listed_ids(client, auth, f"?visibility={visibility}") == [image_id]
    assert sorted(listed_ids(client, auth, "?visibility=all")) == sorted(ids.values())
    assert listed_ids(client, auth, "?visibility=public") == []


def test_list_filter_tags(client, auth, new_image):
    ab = new_image(tags=["a", "b"])
    a = new_image(tags=["a"])
    new_image(tags=["c"])
    assert sorted(listed_ids(client, auth, "?tag=a")) == sorted([ab["id"], a["id"]])
    assert listed_ids(client, auth, "?tag=a&tag=b") == [ab["id"]]
    assert listed_ids(client, auth, "?tag=zzz") == []


@pytest.mark.parametrize("value", ["true", "True", "TRUE"])
def test_list_os_hidden_true(client, auth, new_image, value):
    hidden = new_image(os_hidden=True)
    shown = new_image()
    assert listed_ids(client, auth) == [shown["id"]]
    assert listed_ids(client, auth, f"?os_hidden={value}") == [hidden["id"]]


@pytest.mark.parametrize("value", ["false", "False"])
def test_list_os_hidden_false(client, auth, new_image, value):
    new_image(os_hidden=True)
    shown = new_image()
    assert listed_ids(client, auth, f"?os_hidden={value}") == [shown["id"]]


@pytest.mark.parametrize("value, expect_protected", [("true", True), ("false", False)])
def test_list_filter_protected(client, auth, new_image, value, expect_protected):
    protected = new_image(protected=True)
    plain = new_image()
    wanted = protected if expect_protected else plain
    assert listed_ids(client, auth, f"?protected={value}") == [wanted["id"]]


def test_list_first_link_keeps_filters(client, auth, new_image):
    new_image(name="n")
    body = listing(client, auth, "?name=n&limit=1")
    assert body["first"] == "/v2/images?name=n&limit=1"
    assert body["next"].startswith("/v2/images?name=n&limit=1&marker=")


def test_list_shows_only_visible_images(client, auth, other, admin, new_image):
    mine = {v: new_image(visibility=v)["id"] for v in ("private", "shared", "community")}
    public = new_image(headers=admin, visibility="public")["id"]
    theirs = new_image(headers=other, visibility="private")["id"]
    assert sorted(listed_ids(client, auth)) == sorted([*mine.values(), public])
    assert sorted(listed_ids(client, other)) == sorted([public, theirs])
    assert listed_ids(client, other, "?visibility=community") == [mine["community"]]
    # admin: everything except other owners' community images, unless asked for
    admin_sees = listed_ids(client, admin)
    assert mine["community"] not in admin_sees
    assert set(admin_sees) == {mine["private"], mine["shared"], public, theirs}
    assert mine["community"] in listed_ids(client, admin, "?visibility=all")


def test_list_visibility_all_includes_community_images_of_others(client, auth, other, admin, new_image):
    """Glance 33 (calibrated on the real one): a non-admin's ?visibility=all lists every community
    image, like ?visibility=community; the default listing lists only the caller's own."""
    community = new_image(visibility="community")["id"]
    public = new_image(headers=admin, visibility="public")["id"]
    theirs = new_image(headers=other, visibility="private")["id"]
    assert sorted(listed_ids(client, other, "?visibility=all")) == sorted([community, public, theirs])
    assert sorted(listed_ids(client, other)) == sorted([public, theirs])
    hidden = new_image(visibility="community", os_hidden=True)["id"]
    assert listed_ids(client, other, "?visibility=all&os_hidden=true") == [hidden]


def test_list_by_user_without_roles_is_403(client, make_token):
    roleless = {"X-Auth-Token": make_token("p1", ())}
    assert client.get("/v2/images", headers=roleless).status_code == 403


def test_list_without_token_is_401(client):
    assert client.get("/v2/images").status_code == 401


def test_list_with_body_is_400(client, auth):
    response = client.get("/v2/images", data=b"{}", headers=auth, content_type="application/json")
    assert response.status_code == 400


# --------------------------------------------------------------------------- PATCH


def test_patch_v21_replace_add_remove(client, auth, new_image):
    image = new_image(custom_prop="x", drop_me="1")
    ops = [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/new_prop", "value": "n"},
        {"op": "replace", "path": "/custom_prop", "value": "y"},
        {"op": "remove", "path": "/drop_me"},
        {"op": "replace", "path": "/min_ram", "value": 1024},
        {"op": "add", "path": "/os_hidden", "value": True},
        {"op": "replace", "path": "/tags", "value": ["t1", "t2"]},
    ]
    response = patch(client, image["id"], ops, auth)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert set(body) == BASE_KEYS | {"custom_prop", "new_prop"}
    assert (body["name"], body["custom_prop"], body["new_prop"], body["min_ram"], body["os_hidden"]) == (
        "renamed", "y", "n", 1024, True)
    assert sorted(body["tags"]) == ["t1", "t2"]
    assert show(client, image["id"], auth) == body


def test_patch_v20_draft_format(client, auth, new_image):
    image = new_image(custom_prop="x", drop_me="1")
    ops = [{"replace": "/name", "value": "draft"}, {"add": "/extra", "value": "e"}, {"remove": "/drop_me"},
           {"replace": "/custom_prop", "value": "z"}]
    response = patch(client, image["id"], ops, auth, PATCH_20)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert (body["name"], body["extra"], body["custom_prop"]) == ("draft", "e", "z")
    assert "drop_me" not in body


def test_patch_media_type_parameters_are_ignored(client, auth, new_image):
    image = new_image()
    response = patch(client, image["id"], [{"op": "replace", "path": "/name", "value": "p"}], auth,
                     PATCH_21 + "; charset=utf-8")
    assert response.status_code == 200


@pytest.mark.parametrize("media_type", ["application/json", "application/json-patch+json", "text/plain", None])
def test_patch_other_media_type_is_415_with_accept_patch(client, auth, new_image, media_type):
    image = new_image()
    headers = dict(auth)
    if media_type:
        headers["Content-Type"] = media_type
    response = client.patch(f"/v2/images/{image['id']}", headers=headers,
                            data=json.dumps([{"op": "replace", "path": "/name", "value": "x"}]))
    assert response.status_code == 415
    accepted = [part.strip() for part in response.headers["Accept-Patch"].split(",")]
    assert set(accepted) == {PATCH_21, PATCH_20}
    assert show(client, image["id"], auth)["name"] == "test"


@pytest.mark.parametrize("attribute", READ_ONLY + ("id",))
@pytest.mark.parametrize("op", ["replace", "add"])
def test_patch_read_only_is_403(client, auth, new_image, attribute, op):
    image = new_image()
    response = patch(client, image["id"], [{"op": op, "path": f"/{attribute}", "value": "x"}], auth)
    assert response.status_code == 403


@pytest.mark.parametrize("attribute", RESERVED)
def test_patch_reserved_is_403(client, auth, new_image, attribute):
    image = new_image()
    response = patch(client, image["id"], [{"op": "add", "path": f"/{attribute}", "value": "x"}], auth)
    assert response.status_code == 403


@pytest.mark.parametrize("attribute", ["name", "visibility", "disk_format", "tags"])
def test_patch_remove_base_attribute_is_403(client, auth, new_image, attribute):
    image = new_image()
    response = patch(client, image["id"], [{"op": "remove", "path": f"/{attribute}"}], auth)
    assert response.status_code == 403


@pytest.mark.parametrize("op", [{"op": "replace", "path": "/missing", "value": "v"},
                                {"op": "remove", "path": "/missing"}])
def test_patch_missing_property_is_409(client, auth, new_image, op):
    image = new_image()
    assert patch(client, image["id"], [op], auth).status_code == 409


def test_patch_v20_missing_property_is_409(client, auth, new_image):
    image = new_image()
    assert patch(client, image["id"], [{"replace": "/missing", "value": "v"}], auth, PATCH_20).status_code == 409
    assert patch(client, image["id"], [{"remove": "/missing"}], auth, PATCH_20).status_code == 409


@pytest.mark.parametrize("document", [
    {"op": "replace", "path": "/name", "value": "x"},
    [{"op": "move", "path": "/name", "value": "x"}],
    [{"op": "replace", "path": "name", "value": "x"}],
    [{"op": "replace", "path": "/a/b", "value": "x"}],
    [{"op": "replace", "path": "/name"}],
    [{"op": "replace", "path": "/min_ram", "value": -1}],
    [{"op": "replace", "path": "/visibility", "value": "everyone"}],
    [{"op": "replace", "path": "/disk_format", "value": "foo"}],
    [{"op": "add", "path": "/prop", "value": 5}],
    [{"op": "replace", "path": "/protected", "value": "yes"}],
    ["replace"],
], ids=lambda d: json.dumps(d)[:40])
def test_patch_bad_document_is_400(client, auth, new_image, document):
    image = new_image()
    assert patch(client, image["id"], document, auth).status_code == 400


def test_patch_empty_body_is_400(client, auth, new_image):
    image = new_image()
    response = client.patch(f"/v2/images/{image['id']}", data=b"", headers={**auth, "Content-Type": PATCH_21})
    assert response.status_code == 400


def test_patch_formats_while_queued(client, auth, new_image):
    image = new_image()
    ops = [{"op": "replace", "path": "/disk_format", "value": "qcow2"},
           {"op": "replace", "path": "/container_format", "value": "ovf"}]
    body = patch(client, image["id"], ops, auth).get_json()
    assert (body["disk_format"], body["container_format"]) == ("qcow2", "ovf")


@pytest.mark.parametrize("field, value", [("disk_format", "qcow2"), ("container_format", "ovf")])
def test_patch_format_after_upload_is_403(client, auth, new_image, upload, field, value):
    image = new_image()
    assert upload(image["id"], b"abc").status_code == 204
    response = patch(client, image["id"], [{"op": "replace", "path": f"/{field}", "value": value}], auth)
    assert response.status_code == 403
    assert show(client, image["id"], auth)[field] == image[field]
    # replacing with the same value is not a change
    same = patch(client, image["id"], [{"op": "replace", "path": f"/{field}", "value": image[field]}], auth)
    assert same.status_code == 200


def test_patch_publicize_needs_admin(client, auth, admin, new_image):
    image = new_image()
    op = [{"op": "replace", "path": "/visibility", "value": "public"}]
    assert patch(client, image["id"], op, auth).status_code == 403
    response = patch(client, image["id"], op, admin)
    assert response.status_code == 200
    assert response.get_json()["visibility"] == "public"


def test_patch_owner_needs_admin(client, auth, admin, new_image):
    image = new_image()
    op = [{"op": "replace", "path": "/owner", "value": "p2"}]
    assert patch(client, image["id"], op, auth).status_code == 403
    assert patch(client, image["id"], op, admin).get_json()["owner"] == "p2"


@pytest.mark.parametrize("visibility, status", [("private", 404), ("public", 403), ("community", 403)])
def test_patch_by_other_project(client, admin, other, new_image, visibility, status):
    image = new_image(headers=admin, owner="p1", visibility=visibility)
    response = patch(client, image["id"], [{"op": "replace", "path": "/name", "value": "x"}], other)
    assert response.status_code == status


def test_patch_by_reader_owner_is_403(client, reader, new_image):
    image = new_image()
    response = patch(client, image["id"], [{"op": "replace", "path": "/name", "value": "x"}], reader)
    assert response.status_code == 403


def test_patch_unknown_image_is_404(client, auth):
    response = patch(client, str(uuid.uuid4()), [{"op": "replace", "path": "/name", "value": "x"}], auth)
    assert response.status_code == 404


# --------------------------------------------------------------------------- tags


def test_tags_add_and_delete(client, auth, new_image):
    image = new_image()
    url = f"/v2/images/{image['id']}/tags"
    response = client.put(f"{url}/blue", headers=auth)
    assert response.status_code == 204 and response.data == b""
    assert client.put(f"{url}/blue", headers=auth).status_code == 204  # idempotent
    assert client.put(f"{url}/green", headers=auth).status_code == 204
    assert sorted(show(client, image["id"], auth)["tags"]) == ["blue", "green"]
    assert client.delete(f"{url}/blue", headers=auth).status_code == 204
    assert show(client, image["id"], auth)["tags"] == ["green"]
    assert client.delete(f"{url}/blue", headers=auth).status_code == 404


def test_tags_quota_is_413(client, auth, new_image):
    image = new_image(tags=[f"t{i}" for i in range(128)])
    assert client.put(f"/v2/images/{image['id']}/tags/t5", headers=auth).status_code == 204
    assert client.put(f"/v2/images/{image['id']}/tags/extra", headers=auth).status_code == 413
    assert len(show(client, image["id"], auth)["tags"]) == 128


def test_patch_property_quota_is_413(client, auth, new_image):
    image = new_image(**{f"p{i}": "v" for i in range(128)})
    ok = patch(client, image["id"], [{"op": "replace", "path": "/p0", "value": "w"}], auth)
    assert ok.status_code == 200
    response = patch(client, image["id"], [{"op": "add", "path": "/p128", "value": "v"}], auth)
    assert response.status_code == 413
    assert "p128" not in show(client, image["id"], auth)


def test_tags_too_long_is_400(client, auth, new_image):
    image = new_image()
    assert client.put(f"/v2/images/{image['id']}/tags/{'t' * 256}", headers=auth).status_code == 400


@pytest.mark.parametrize("visibility, status", [("private", 404), ("public", 403)])
def test_tags_by_other_project(client, admin, other, new_image, visibility, status):
    image = new_image(headers=admin, owner="p1", visibility=visibility, tags=["keep"])
    assert client.put(f"/v2/images/{image['id']}/tags/x", headers=other).status_code == status
    assert client.delete(f"/v2/images/{image['id']}/tags/keep", headers=other).status_code == status


def test_tags_unknown_image_is_404(client, auth):
    assert client.put(f"/v2/images/{uuid.uuid4()}/tags/x", headers=auth).status_code == 404


# --------------------------------------------------------------------------- delete


def test_delete_active_image_removes_everything(client, auth, new_image, upload, tmp_path):
    image = new_image()
    image_id = image["id"]
    assert upload(image_id, b"ZZZZZ").status_code == 204
    assert any(image_id in path for path in store_files(tmp_path))
    response = client.delete(f"/v2/images/{image_id}", headers=auth)
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"/v2/images/{image_id}", headers=auth).status_code == 404
    assert client.get(f"/v2/images/{image_id}/file", headers=auth).status_code == 404
    put = client.put(f"/v2/images/{image_id}/file", data=b"x",
                     headers={**auth, "Content-Type": "application/octet-stream"})
    assert put.status_code == 404
    assert patch(client, image_id, [{"op": "replace", "path": "/name", "value": "x"}], auth).status_code == 404
    assert client.delete(f"/v2/images/{image_id}", headers=auth).status_code == 404
    assert client.put(f"/v2/images/{image_id}/tags/x", headers=auth).status_code == 404
    assert image_id not in listed_ids(client, auth)
    assert store_files(tmp_path) == []


def test_delete_is_404_for_admin_too(client, auth, admin, new_image):
    image = new_image()
    assert client.delete(f"/v2/images/{image['id']}", headers=auth).status_code == 204
    assert client.get(f"/v2/images/{image['id']}", headers=admin).status_code == 404
    assert image["id"] not in listed_ids(client, admin, "?visibility=all")


def test_delete_queued_image(client, auth, new_image):
    image = new_image()
    assert client.delete(f"/v2/images/{image['id']}", headers=auth).status_code == 204
    assert client.get(f"/v2/images/{image['id']}", headers=auth).status_code == 404


def test_deleted_id_cannot_be_reused(client, auth, admin, new_image):
    image = new_image()
    assert client.delete(f"/v2/images/{image['id']}", headers=auth).status_code == 204
    assert client.post("/v2/images", json={"id": image["id"]}, headers=auth).status_code == 409
    assert client.post("/v2/images", json={"id": image["id"]}, headers=admin).status_code == 409


def test_delete_protected_is_403(client, auth, new_image, upload):
    image = new_image(protected=True)
    assert upload(image["id"], b"abc").status_code == 204
    assert client.delete(f"/v2/images/{image['id']}", headers=auth).status_code == 403
    got = client.get(f"/v2/images/{image['id']}/file", headers=auth)
    assert (got.status_code, got.data) == (200, b"abc")
    assert patch(client, image["id"], [{"op": "replace", "path": "/protected", "value": False}],
                 auth).status_code == 200
    assert client.delete(f"/v2/images/{image['id']}", headers=auth).status_code == 204


@pytest.mark.parametrize("visibility, status", [("private", 404), ("shared", 404), ("public", 403),
                                                ("community", 403)])
def test_delete_by_other_project(client, admin, auth, other, new_image, visibility, status):
    image = new_image(headers=admin, owner="p1", visibility=visibility)
    assert client.delete(f"/v2/images/{image['id']}", headers=other).status_code == status
    assert client.get(f"/v2/images/{image['id']}", headers=auth).status_code == 200


def test_delete_by_reader_owner_is_403(client, reader, new_image):
    image = new_image()
    assert client.delete(f"/v2/images/{image['id']}", headers=reader).status_code == 403


def test_delete_by_admin(client, admin, auth, new_image):
    image = new_image()
    assert client.delete(f"/v2/images/{image['id']}", headers=admin).status_code == 204
    assert client.get(f"/v2/images/{image['id']}", headers=auth).status_code == 404


def test_delete_with_body_is_400(client, auth, new_image):
    image = new_image()
    response = client.delete(f"/v2/images/{image['id']}", data=b"{}", headers=auth,
                             content_type="application/json")
    assert response.status_code == 400
    assert client.get(f"/v2/images/{image['id']}", headers=auth).status_code == 200


def test_url_version_prefix_reaches_images(client, auth, new_image):
    image = new_image()
    for prefix in ("v2.1", "v2.17", "v2.0"):
        response = client.get(f"/{prefix}/images/{image['id']}", headers=auth)
        assert response.status_code == 200
        assert response.get_json() == image
