"""Namespaces: create, show with contents, list, update, delete, as Glance 33 answers (both databases).

The status codes and bodies pinned here were observed on the real Glance 33.0.0 (the peers kit,
fakeauth), except where a comment says why we differ.
"""
from __future__ import annotations

import pytest

from tests.metadefs.conftest import NS, SQLITE_ONLY, created, message, ok, without_stamps

FULL = {"namespace": "ns-full", "visibility": "public", "protected": True, "display_name": "NS full",
        "description": "d", "resource_type_associations": [
            {"name": "OS::Glance::Image", "prefix": "hw_"},
            {"name": "OS::Cinder::Volume", "prefix": "hw_", "properties_target": "image"}],
        "properties": {"p1": {"title": "P1", "type": "string", "enum": ["a", "b"], "default": "a"}},
        "objects": [{"name": "o1", "description": "obj", "required": ["a"],
                     "properties": {"a": {"title": "A", "type": "integer", "minimum": 1}}}],
        "tags": [{"name": "t1"}, {"name": "t2"}]}


def test_minimal_namespace_gets_glance_defaults(api):
    response = api().post(NS, {"namespace": "ns1"})
    body = created(response)
    assert response.headers["Location"] == "http://localhost/v2/metadefs/namespaces/ns1"
    assert without_stamps(body) == {"namespace": "ns1", "visibility": "private", "protected": False, "owner": "ops",
                                    "schema": "/v2/schemas/metadefs/namespace",
                                    "self": "/v2/metadefs/namespaces/ns1"}
    assert body["created_at"] == body["updated_at"] and body["created_at"].endswith("Z")
    assert ok(api().get(f"{NS}/ns1")) == body
    duplicate = api().post(NS, {"namespace": "ns1"})
    assert duplicate.status_code == 409
    assert message(duplicate) == "The metadata definition namespace=ns1 already exists."


def test_namespace_with_contents_shows_them_all(api):
    created(api().post(NS, FULL))
    shown = without_stamps(ok(api().get(f"{NS}/ns-full")))
    assert shown == {
        "namespace": "ns-full", "display_name": "NS full", "description": "d", "visibility": "public",
        "protected": True, "owner": "ops", "schema": "/v2/schemas/metadefs/namespace",
        "self": "/v2/metadefs/namespaces/ns-full",
        "objects": [{"name": "o1", "description": "obj", "required": ["a"],
                     "properties": {"a": {"title": "A", "type": "integer", "minimum": 1}},
                     "schema": "/v2/schemas/metadefs/object", "self": "/v2/metadefs/namespaces/ns-full/objects/o1"}],
        "properties": {"p1": {"title": "P1", "type": "string", "enum": ["a", "b"], "default": "a"}},
        "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"},
                                       {"name": "OS::Cinder::Volume", "prefix": "hw_", "properties_target": "image"}],
        "tags": [{"name": "t2"}, {"name": "t1"}]}
    names = [t["name"] for t in ok(api().get("/v2/metadefs/resource_types"))["resource_types"]]
    assert names == ["OS::Glance::Image", "OS::Cinder::Volume"]  # created by their first association


def test_resource_type_query_prefixes_property_names(api):
    created(api().post(NS, FULL))
    shown = ok(api().get(f"{NS}/ns-full?resource_type=OS::Glance::Image"))
    assert list(shown["properties"]) == ["hw_p1"]
    assert list(shown["objects"][0]["properties"]) == ["hw_a"] and shown["objects"][0]["required"] == ["hw_a"]
    unknown = ok(api().get(f"{NS}/ns-full?resource_type=OS::Nope"))
    assert list(unknown["properties"]) == ["p1"]


def test_contents_in_a_create_are_all_or_nothing(api):
    body = {"namespace": "ns-dup", "tags": [{"name": "t"}, {"name": "t"}]}
    response = api().post(NS, body)
    assert response.status_code == 409
    assert message(response).startswith("A metadata tag with name=t already exists in namespace=ns-dup.")
    assert api().get(f"{NS}/ns-dup").status_code == 404
    created(api().post(NS, {**body, "tags": [{"name": "t"}]}))


def test_protected_namespace_refuses_every_delete_but_allows_changes(api):
    created(api().post(NS, FULL))
    refused = {
        "": "Metadata definition namespace ns-full is protected and cannot be deleted.",
        "/objects": "Metadata definition namespace ns-full is protected and cannot be deleted.",
        "/properties": "Metadata definition namespace ns-full is protected and cannot be deleted.",
        "/tags": "Metadata definition namespace ns-full is protected and cannot be deleted.",
        "/objects/o1": "Metadata definition object o1 is protected and cannot be deleted.",
        "/properties/p1": "Metadata definition property p1 is protected and cannot be deleted.",
        "/tags/t1": "Metadata definition tag t1 is protected and cannot be deleted.",
        "/resource_types/OS::Glance::Image":
            "Metadata definition resource-type-association OS::Glance::Image is protected and cannot be deleted.",
    }
    for path, text in refused.items():
        response = api().delete(f"{NS}/ns-full{path}")
        assert (response.status_code, message(response)) == (403, text), path
    assert api().put(f"{NS}/ns-full/objects/o1", {"name": "o1", "description": "changed"}).status_code == 200
    assert api().post(f"{NS}/ns-full/tags/t3").status_code == 201
    assert api().delete(f"{NS}/ns-full/objects/nope").status_code == 404  # Glance: not found before protected


def test_update_resets_what_the_body_leaves_out(api, who):
    created(api().post(NS, {**FULL, "owner": "proj-b"}))
    # Glance: visibility, protected and owner go back to private, false and the caller's project.
    body = ok(api().put(f"{NS}/ns-full", {"namespace": "ns-full"}))
    assert without_stamps(body) == {"namespace": "ns-full", "visibility": "private", "protected": False,
                                    "owner": "ops", "schema": "/v2/schemas/metadefs/namespace",
                                    "self": "/v2/metadefs/namespaces/ns-full"}
    renamed = ok(api().put(f"{NS}/ns-full", {"namespace": "ns-renamed", "visibility": "public",
                                             "objects": [{"name": "ignored"}]}))
    assert renamed["self"] == "/v2/metadefs/namespaces/ns-renamed"
    shown = ok(api().get(f"{NS}/ns-renamed"))
    assert [o["name"] for o in shown["objects"]] == ["o1"] and len(shown["tags"]) == 2  # contents kept, not added
    assert api().get(f"{NS}/ns-full").status_code == 404
    created(api().post(NS, {"namespace": "other"}))
    clash = api().put(f"{NS}/ns-renamed", {"namespace": "other"})
    assert clash.status_code == 409
    assert message(clash) == ("Invalid update. It would result in a duplicate metadata definition namespace with "
                              "the same name of other")


def test_delete_removes_the_contents_and_keeps_resource_types(api):
    created(api().post(NS, {**FULL, "protected": False}))
    assert api().delete(f"{NS}/ns-full").status_code == 204
    assert api().get(f"{NS}/ns-full").status_code == 404
    assert api().delete(f"{NS}/ns-full").status_code == 404
    created(api().post(NS, {"namespace": "ns-full"}))  # nothing of the old one comes back
    assert without_stamps(ok(api().get(f"{NS}/ns-full"))).keys() == {
        "namespace", "visibility", "protected", "owner", "schema", "self"}
    assert len(ok(api().get("/v2/metadefs/resource_types"))["resource_types"]) == 2


@SQLITE_ONLY
@pytest.mark.parametrize("method, path, body, status, text", [
    ("POST", NS, None, 400, "Body expected in request."),
    ("POST", NS, "{bad", 400, "Malformed JSON in request body."),
    ("POST", NS, [], 400, "Provided object does not match schema 'namespace': the body must be a JSON object."),
    ("POST", NS, {"namespace": "x", "bogus": 1}, 400,
     "Provided object does not match schema 'namespace': Additional properties are not allowed ('bogus' was "
     "unexpected)"),
    ("POST", NS, {"namespace": "x", "self": "y"}, 403, "Attribute 'self' is read-only."),
    ("POST", NS, {"namespace": "x", "schema": "y"}, 403, "Attribute 'schema' is read-only."),
    ("POST", NS, {"namespace": "x" * 81}, 400, f"Provided object does not match schema 'namespace': '{'x' * 81}' "
                                               "is too long (at ['namespace'])"),
    ("POST", NS, {"namespace": "x", "visibility": "shared"}, 400,
     "Provided object does not match schema 'namespace': 'shared' is not one of ['public', 'private'] "
     "(at ['visibility'])"),
    ("POST", NS, {"display_name": "x"}, 400,
     "Provided object does not match schema 'namespace': 'namespace' is a required property"),
    ("POST", NS, {"namespace": "x", "protected": "yes"}, 400,
     "Provided object does not match schema 'namespace': 'yes' is not of type 'boolean' (at ['protected'])"),
    ("POST", NS, {"namespace": "x", "properties": {"p": {"type": "string"}}}, 400,
     "Provided object does not match schema 'namespace': 'title' is a required property (at ['properties']['p'])"),
    ("POST", NS, {"namespace": "x", "owner": None}, 400,
     "Provided object does not match schema 'namespace': None is not of type 'string' (at ['owner'])"),
    # Glance: 201, and then the namespace cannot be addressed; and 500 for unknown keys inside contents.
    ("POST", NS, {"namespace": ""}, 400, "Invalid namespace name '': it must not be empty or contain '/'."),
    ("POST", NS, {"namespace": "a/b"}, 400, "Invalid namespace name 'a/b': it must not be empty or contain '/'."),
    ("POST", NS, {"namespace": "x", "objects": [{"name": "z", "x": 1}]}, 400,
     "Provided object does not match schema 'object': Additional properties are not allowed ('x' was unexpected)"),
    ("PUT", f"{NS}/ns1", {"display_name": "x"}, 400,
     "Provided object does not match schema 'namespace': 'namespace' is a required property"),
    ("PUT", f"{NS}/ns1", {"namespace": "ns1", "created_at": "x"}, 403, "Attribute 'created_at' is read-only."),
    ("PUT", f"{NS}/nope", {"namespace": "nope"}, 404, "Metadata definition namespace=nope was not found."),
    ("GET", f"{NS}/ns1", {"x": 1}, 400, "A body is not expected with this request."),
    ("DELETE", f"{NS}/ns1", {"x": 1}, 400, "A body is not expected with this request."),
    ("PATCH", f"{NS}/ns1", {"x": 1}, 405, "The method PATCH is not allowed for this resource."),
    ("DELETE", NS, None, 405, "The method DELETE is not allowed for this resource."),
    ("POST", "/v2/metadefs/resource_types", {"name": "x"}, 405, "The method POST is not allowed for this resource."),
])
def test_bad_namespace_requests(api, method, path, body, status, text):
    created(api().post(NS, {"namespace": "ns1"}))
    response = api().request(method, path, body)
    assert (response.status_code, message(response)) == (status, text)
    assert api().get(f"{NS}/x").status_code == 404  # nothing was created
