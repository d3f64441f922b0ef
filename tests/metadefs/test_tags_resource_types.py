"""Tags (one, or a list replacing or appending) and resource type associations, as Glance 33 answers."""
from __future__ import annotations

import pytest

from tests.metadefs.conftest import NS, SQLITE_ONLY, created, message, ok, without_stamps

TAGS = f"{NS}/ns1/tags"
ASSOCIATIONS = f"{NS}/ns1/resource_types"
APPEND = {"X-Openstack-Append": "True"}


@pytest.fixture(autouse=True)
def namespace(api):
    created(api().post(NS, {"namespace": "ns1"}))


def tag_names(api, query: str = "") -> list[str]:
    return [tag["name"] for tag in ok(api().get(TAGS + query))["tags"]]


def test_single_tags(api):
    body = created(api().post(f"{TAGS}/tag1"))
    assert body.keys() == {"name", "created_at", "updated_at"} and body["name"] == "tag1"
    duplicate = api().post(f"{TAGS}/tag1")
    assert (duplicate.status_code, message(duplicate)) == (
        409, "A metadata tag with name=tag1 already exists in namespace=ns1. (Please note that metadata tag names "
             "are case insensitive).")
    created(api().post(f"{TAGS}/TAG1"))  # they are not, here (nor on Glance with SQLite)
    assert api().post(f"{TAGS}/tag9", {"name": "x"}).status_code == 400  # no body on this one
    too_long = api().post(f"{TAGS}/{'t' * 81}")
    assert too_long.status_code == 400 and "is too long" in message(too_long)
    assert ok(api().get(f"{TAGS}/tag1"))["name"] == "tag1"
    renamed = ok(api().put(f"{TAGS}/tag1", {"name": "tag2"}))
    assert renamed["name"] == "tag2"
    clash = api().put(f"{TAGS}/tag2", {"name": "TAG1"})
    assert clash.status_code == 409
    missing = api().get(f"{TAGS}/tag1")
    assert (missing.status_code, message(missing)) == (404, "Could not find metadata tag tag1")
    assert api().put(f"{TAGS}/tag2").status_code == 400  # Body expected in request.
    assert api().delete(f"{TAGS}/tag2").status_code == 204
    assert api().delete(f"{TAGS}/tag2").status_code == 404


def test_a_list_replaces_or_appends(api):
    created(api().post(f"{TAGS}/old"))
    assert created(api().post(TAGS, {"tags": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})) == {
        "tags": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    assert tag_names(api) == ["c", "b", "a"]  # newest first; one request, one second: by creation
    assert created(api().post(TAGS, {"tags": [{"name": "d"}]}, headers=APPEND)) == {"tags": [{"name": "d"}]}
    assert tag_names(api) == ["d", "c", "b", "a"]
    for body, headers in (({"tags": [{"name": "a"}]}, APPEND), ({"tags": [{"name": "z"}, {"name": "z"}]}, {})):
        refused = api().post(TAGS, body, headers=headers)
        assert refused.status_code == 409, refused.get_data(as_text=True)
        assert tag_names(api) == ["d", "c", "b", "a"]  # all or nothing
    assert created(api().post(TAGS, {"tags": []})) == {"tags": []}
    assert tag_names(api) == ["d", "c", "b", "a"]  # Glance: an empty list replaces nothing
    assert created(api().post(TAGS, {"tags": [{"name": "q"}]}, headers={"X-Openstack-Append": "no"}))
    assert tag_names(api) == ["q"]
    assert api().delete(TAGS).status_code == 204
    assert tag_names(api) == []


def test_tag_list_order_and_paging(api):
    created(api().post(TAGS, {"tags": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}))
    assert tag_names(api, "?limit=2") == ["c", "b"]
    assert tag_names(api, "?limit=2&marker=b") == ["a"]
    assert tag_names(api, "?sort_dir=asc&sort_key=name") == ["a", "b", "c"]
    assert tag_names(api, "?sort_key=name&marker=b") == ["a"]
    for query, status in (("?marker=zzz", 404), ("?sort_key=zzz", 400), ("?sort_dir=x", 400),
                          ("?limit=x", 400)):
        assert api().get(TAGS + query).status_code == status, query


@SQLITE_ONLY
@pytest.mark.parametrize("body, text", [
    ({"tags": [{"nom": "a"}]}, "Provided object does not match schema 'tags': 'name' is a required property "
                               "(at ['tags'][0])"),
    ({"tags": "a"}, "Provided object does not match schema 'tags': 'a' is not of type 'array' (at ['tags'])"),
    ({"tags": [{"name": "x" * 81}]}, f"Provided object does not match schema 'tags': '{'x' * 81}' is too long "
                                     "(at ['tags'][0]['name'])"),  # Glance: stored, on SQLite
])
def test_bad_tag_lists(api, body, text):
    response = api().post(TAGS, body)
    assert (response.status_code, message(response)) == (400, text)


def test_associations(api):
    body = created(api().post(ASSOCIATIONS, {"name": "OS::Nova::Flavor", "prefix": "x:"}))
    assert without_stamps(body) == {"name": "OS::Nova::Flavor", "prefix": "x:"}
    duplicate = api().post(ASSOCIATIONS, {"name": "OS::Nova::Flavor"})
    assert (duplicate.status_code, message(duplicate)) == (
        409, "The metadata definition resource-type association of resource-type=OS::Nova::Flavor to namespace=ns1 "
             "already exists.")
    assert without_stamps(ok(api().get(ASSOCIATIONS))) == {
        "resource_type_associations": [{"name": "OS::Nova::Flavor", "prefix": "x:"}]}
    types = ok(api().get("/v2/metadefs/resource_types"))["resource_types"]
    assert [t["name"] for t in types] == ["OS::Nova::Flavor"] and types[0].keys() == {"name", "created_at",
                                                                                       "updated_at"}
    assert api().delete(f"{ASSOCIATIONS}/OS::Nova::Flavor").status_code == 204
    for name in ("OS::Nova::Flavor", "Never"):
        missing = api().delete(f"{ASSOCIATIONS}/{name}")
        assert (missing.status_code, message(missing)) == (404, f"Failed to find resource type {name} to delete")
    assert ok(api().get(ASSOCIATIONS)) == {"resource_type_associations": []}
    assert len(ok(api().get("/v2/metadefs/resource_types"))["resource_types"]) == 1  # resource types stay


@SQLITE_ONLY
@pytest.mark.parametrize("body, status, text", [
    ({"prefix": "x"}, 400, "Provided object does not match schema 'resource_type_association': 'name' is a "
                           "required property"),
    ({"name": "y", "z": 1}, 400, "Provided object does not match schema 'resource_type_association': Additional "
                                 "properties are not allowed ('z' was unexpected)"),
    ({"name": "y", "created_at": "x"}, 403, "Attribute 'created_at' is read-only."),
])
def test_bad_associations(api, body, status, text):
    response = api().post(ASSOCIATIONS, body)
    assert (response.status_code, message(response)) == (status, text)
