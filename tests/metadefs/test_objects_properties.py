"""Objects and property definitions of a namespace, as Glance 33 answers (both databases)."""
from __future__ import annotations

import pytest

from tests.metadefs.conftest import NS, SQLITE_ONLY, created, message, ok, without_stamps

OBJECTS = f"{NS}/ns1/objects"
PROPERTIES = f"{NS}/ns1/properties"


@pytest.fixture(autouse=True)
def namespace(api):
    created(api().post(NS, {"namespace": "ns1"}))


def test_object_lifecycle(api):
    first = created(api().post(OBJECTS, {"name": "obj1"}))
    assert without_stamps(first) == {"name": "obj1", "properties": {}, "required": [],
                                     "schema": "/v2/schemas/metadefs/object",
                                     "self": "/v2/metadefs/namespaces/ns1/objects/obj1"}
    full = {"name": "obj2", "description": "d", "required": ["k"],
            "properties": {"k": {"title": "K", "type": "string", "maxLength": 5}}}
    assert without_stamps(created(api().post(OBJECTS, full))) == {
        **full, "schema": "/v2/schemas/metadefs/object", "self": "/v2/metadefs/namespaces/ns1/objects/obj2"}
    duplicate = api().post(OBJECTS, {"name": "obj1"})
    assert (duplicate.status_code, message(duplicate)) == (
        409, "A metadata definition object with name=obj1 already exists in namespace=ns1.")
    listed = ok(api().get(OBJECTS))
    assert [o["name"] for o in listed["objects"]] == ["obj1", "obj2"]
    assert listed["schema"] == "v2/schemas/metadefs/objects"  # Glance: no leading slash on this one
    assert ok(api().get(f"{OBJECTS}/obj2"))["properties"] == full["properties"]
    # PUT replaces: what the body leaves out is cleared; the object may be renamed.
    renamed = ok(api().put(f"{OBJECTS}/obj1", {"name": "obj1b", "description": "new"}))
    assert (renamed["name"], renamed["description"], renamed["self"]) == (
        "obj1b", "new", "/v2/metadefs/namespaces/ns1/objects/obj1b")
    cleared = ok(api().put(f"{OBJECTS}/obj2", {"name": "obj2"}))
    assert (cleared["properties"], cleared["required"], "description" in cleared) == ({}, [], False)
    clash = api().put(f"{OBJECTS}/obj1b", {"name": "obj2"})  # Glance: 500
    assert (clash.status_code, message(clash)) == (
        409, "A metadata definition object with name=obj2 already exists in namespace=ns1.")
    assert api().delete(f"{OBJECTS}/obj1b").status_code == 204
    gone = api().delete(f"{OBJECTS}/obj1b")
    assert (gone.status_code, message(gone)) == (404, "Could not find metadata object obj1b")
    assert api().delete(OBJECTS).status_code == 204
    assert ok(api().get(OBJECTS))["objects"] == []


def test_property_lifecycle(api):
    assert created(api().post(PROPERTIES, {"name": "prop1", "title": "T", "type": "string"})) == {
        "name": "prop1", "title": "T", "type": "string"}
    rich = {"name": "prop2", "title": "T2", "type": "array", "description": "d", "readonly": False,
            "items": {"type": "string", "enum": ["x", "y"]}, "operators": ["<or>"], "uniqueItems": True,
            "minItems": 1}
    assert created(api().post(PROPERTIES, rich)) == rich
    listed = ok(api().get(PROPERTIES))
    assert listed == {"properties": {"prop1": {"name": "prop1", "title": "T", "type": "string"}, "prop2": rich}}
    assert ok(api().get(f"{PROPERTIES}/prop2")) == rich
    assert ok(api().put(f"{PROPERTIES}/prop1", {"name": "prop1b", "title": "T1b", "type": "string"})) == {
        "name": "prop1b", "title": "T1b", "type": "string"}
    clash = api().put(f"{PROPERTIES}/prop1b", {"name": "prop2", "title": "x", "type": "string"})  # Glance: 500
    assert (clash.status_code, message(clash)) == (
        409, "A metadata definition property with name=prop2 already exists in namespace=ns1.")
    missing = api().get(f"{PROPERTIES}/prop1")
    assert (missing.status_code, message(missing)) == (404, "Could not find property prop1")
    assert api().delete(f"{PROPERTIES}/prop1b").status_code == 204
    assert api().delete(PROPERTIES).status_code == 204
    assert ok(api().get(PROPERTIES)) == {"properties": {}}


@SQLITE_ONLY
@pytest.mark.parametrize("default, served", [
    # Glance serves a default as Python writes it, and a list or object default as null.
    (5, "5"), (False, "False"), (True, "True"), (1.5, "1.5"), ("x", "x"), ([1, 2], None), ({"a": 1}, None),
    (None, None),
])
def test_defaults_are_served_as_text(api, default, served):
    body = created(api().post(PROPERTIES, {"name": "p", "title": "T", "type": "string", "default": default}))
    assert body["default"] == served
    objects = created(api().post(OBJECTS, {"name": "o", "properties": {"a": {"title": "A", "type": "boolean",
                                                                             "default": default}}}))
    assert objects["properties"]["a"]["default"] == served


def test_numbers_are_kept(api):
    # Glance truncates minimum and maximum to integers (0.5 -> 0); a number property needs them whole.
    body = created(api().post(PROPERTIES, {"name": "n", "title": "N", "type": "number", "minimum": 0.5,
                                           "maximum": 2.25}))
    assert (body["minimum"], body["maximum"]) == (0.5, 2.25)


def test_property_show_with_a_resource_type_prefix(api):
    created(api().post(PROPERTIES, {"name": "pattern", "title": "T", "type": "string", "pattern": "^a"}))
    created(api().post(f"{NS}/ns1/resource_types", {"name": "PFX", "prefix": "pf_"}))
    created(api().post(f"{NS}/ns1/resource_types", {"name": "BARE"}))
    assert ok(api().get(f"{PROPERTIES}/pf_pattern?resource_type=PFX"))["name"] == "pattern"
    assert ok(api().get(f"{PROPERTIES}/pattern?resource_type="))["name"] == "pattern"
    assert ok(api().get(f"{PROPERTIES}/pattern?foo=bar"))["name"] == "pattern"  # Glance: 500
    for query, text in (
            ("pattern?resource_type=PFX",
             "Property pattern does not start with the expected resource type association prefix of 'pf_'."),
            ("pattern?resource_type=BARE",
             "Property pattern does not start with the expected resource type association prefix of 'None'."),
            ("pattern?resource_type=NOPE", "The metadata definition resource-type with name=NOPE, was not found.")):
        response = api().get(f"{PROPERTIES}/{query}")
        assert (response.status_code, message(response)) == (404, text)


@SQLITE_ONLY
@pytest.mark.parametrize("path, body, status, text", [
    (OBJECTS, {"description": "x"}, 400, "Provided object does not match schema 'object': 'name' is a required "
                                         "property"),
    (OBJECTS, {"name": "o", "properties": {"k": {"type": "string"}}}, 400,
     "Provided object does not match schema 'object': 'title' is a required property (at ['properties']['k'])"),
    (OBJECTS, {"name": "o", "properties": {"k": {"title": "K", "type": "string", "foo": 1}}}, 400,
     "Provided object does not match schema 'property': Additional properties are not allowed ('foo' was "
     "unexpected)"),
    (OBJECTS, {"name": "o", "required": ["a", "a"]}, 400,
     "Provided object does not match schema 'object': ['a', 'a'] has non-unique elements (at ['required'])"),
    (OBJECTS, {"name": "o", "self": "x"}, 403, "Attribute 'self' is read-only."),
    (OBJECTS, {"name": 5}, 400, "Provided object does not match schema 'object': 5 is not of type 'string' "
                                "(at ['name'])"),
    (f"{NS}/nope/objects", {"name": "o"}, 404, "Metadata definition namespace=nope was not found."),
    (PROPERTIES, {"name": "p", "type": "string"}, 400,
     "Provided object does not match schema 'property': 'title' is a required property"),
    (PROPERTIES, {"title": "t", "type": "string"}, 400,
     "Provided object does not match schema 'property': 'name' is a required property"),
    (PROPERTIES, {"name": "p", "title": "t", "type": "string", "created_at": "x"}, 403,
     "Attribute 'created_at' is read-only."),
    (PROPERTIES, {"name": "p", "title": "t", "type": "string", "confidential": True}, 400,
     "Provided object does not match schema 'property': Additional properties are not allowed ('confidential' was "
     "unexpected)"),
    (PROPERTIES, {"name": "p", "title": "t", "type": None}, 400,
     "Provided object does not match schema 'property': None is not of type 'string' (at ['type'])"),
    # Glance: 500 for each of these three.
    (PROPERTIES, {"name": "p", "title": "t", "type": "string", "enum": [1, 2]}, 400,
     "Provided object does not match schema 'property': enum values must be strings."),
    (PROPERTIES, {"name": "p", "title": "t", "type": "array", "items": {"type": "string", "foo": 1}}, 400,
     "Provided object does not match schema 'property': items may only hold ['enum', 'type']."),
    (PROPERTIES, {"name": "p", "title": "t", "type": "object", "required": ["x"]}, 400,
     "Provided object does not match schema 'property': 'required' is not supported in a property definition."),
    (PROPERTIES, {"name": "a/b", "title": "t", "type": "string"}, 400,
     "Invalid property name 'a/b': it must not be empty or contain '/'."),
])
def test_bad_object_and_property_bodies(api, path, body, status, text):
    response = api().post(path, body)
    assert (response.status_code, message(response)) == (status, text)
    assert ok(api().get(OBJECTS))["objects"] == [] and ok(api().get(PROPERTIES))["properties"] == {}


@pytest.mark.parametrize("query, status", [("limit=1&sort_dir=asc", 200), ("sort_dir=x", 400), ("limit=0", 400)])
def test_object_list_parameters_are_checked_not_used(api, query, status):
    created(api().post(OBJECTS, {"name": "a"}))
    created(api().post(OBJECTS, {"name": "b"}))
    response = api().get(f"{OBJECTS}?{query}")
    assert response.status_code == status
    if status == 200:
        assert len(response.get_json()["objects"]) == 2  # Glance pages nothing here
