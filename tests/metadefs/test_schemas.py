"""GET /v2/schemas/metadefs/*: the documents python-glanceclient and Horizon build from.

Their shape (names, types, bounds, required lists) is Glance 33's, observed on the real service;
their descriptions are our own words. glanceclient wraps every answer in a model validated
against these documents, so each answer of the API must validate too.
"""
from __future__ import annotations

import jsonschema
import pytest

from tests.metadefs.conftest import NS, created, ok

DB_BACKENDS = ("sqlite",)
PROPERTY_KEYS = {"name", "title", "description", "operators", "type", "required", "minimum", "maximum",
                 "maxLength", "minLength", "pattern", "enum", "readonly", "default", "items", "maxItems", "minItems",
                 "uniqueItems", "additionalItems"}
STAMPS_AND_LINKS = {"created_at", "updated_at", "schema", "self"}
DEFINITIONS = {"positiveInteger", "positiveIntegerDefault0", "stringArray", "property"}

# path -> (name, item keys, required, definitions); Tempest checks each document's name.
DOCUMENTS = {
    "namespace": ("namespace", {"namespace", "display_name", "description", "visibility", "protected", "owner",
                                "resource_type_associations", "properties", "objects", "tags"} | STAMPS_AND_LINKS,
                  ["namespace"], DEFINITIONS),
    "object": ("object", {"name", "description", "required", "properties"} | STAMPS_AND_LINKS, ["name"],
               DEFINITIONS),
    "property": ("property", PROPERTY_KEYS, ["type", "title", "name"], DEFINITIONS - {"property"}),
    "tag": ("tag", {"name", "created_at", "updated_at"}, ["name"], set()),
    "resource_type": ("resource_type_association", {"name", "prefix", "properties_target", "created_at",
                                                    "updated_at"}, ["name"], set()),
}
COLLECTIONS = {"namespaces": "namespace", "objects": "object", "tags": "tag",
               "resource_types": "resource_type"}


def fetch(api, path: str) -> dict:
    return ok(api("a-reader").get(f"/v2/schemas/metadefs/{path}"))


@pytest.mark.parametrize("path", sorted(DOCUMENTS))
def test_item_documents(api, path):
    document = fetch(api, path)
    name, keys, required, definitions = DOCUMENTS[path]
    assert (document["name"], set(document["properties"]), document["required"]) == (name, keys, required)
    assert document["additionalProperties"] is False
    assert set(document.get("definitions", {})) == definitions
    jsonschema.validators.validator_for(document).check_schema(document)


@pytest.mark.parametrize("path", sorted(COLLECTIONS))
def test_collection_documents(api, path):
    document, item = fetch(api, path), fetch(api, COLLECTIONS[path])
    name = DOCUMENTS[COLLECTIONS[path]][0] + "s"
    assert document["name"] == name
    assert set(document["properties"]) == {name, "first", "next", "schema"}
    item.pop("definitions", None)
    assert document["properties"][name] == {"type": "array", "items": item}
    assert [link["rel"] for link in document["links"]] == ["first", "next", "describedby"]


def test_properties_document(api):
    document = fetch(api, "properties")
    assert document["name"] == "properties"
    values = document["properties"]["properties"]["additionalProperties"]
    assert (set(values["properties"]), values["required"]) == (PROPERTY_KEYS, ["type", "title"])
    assert document["definitions"]["stringArray"]["minItems"] == 1


def test_bounds_are_glances(api):
    namespace = fetch(api, "namespace")["properties"]
    assert {key: namespace[key].get("maxLength") for key in ("namespace", "display_name", "description", "owner")} \
        == {"namespace": 80, "display_name": 80, "description": 500, "owner": 255}
    assert namespace["visibility"]["enum"] == ["public", "private"]
    property_type = fetch(api, "property")["properties"]["type"]
    assert property_type["enum"] == ["array", "boolean", "integer", "number", "object", "string", None]


def test_unknown_document_and_other_methods(api):
    assert api().get("/v2/schemas/metadefs/nope").status_code == 404
    assert api().post("/v2/schemas/metadefs/namespace", {"x": 1}).status_code == 405
    assert api().get("/v2/schemas/metadefs/namespace", body={"x": 1}).status_code == 400


def test_every_answer_validates_against_its_document(api):
    """What glanceclient does with each answer (a warlock model of the document)."""
    full = {"namespace": "ns", "visibility": "public", "display_name": "D", "description": "d",
            "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"}],
            "properties": {"p": {"title": "P", "type": "integer", "default": 3, "minimum": 1}},
            "objects": [{"name": "o", "required": ["a"], "properties": {"a": {"title": "A", "type": "string"}}}],
            "tags": [{"name": "t"}]}
    answers = {
        "namespace": [created(api().post(NS, full)), ok(api().get(f"{NS}/ns")),
                      ok(api().put(f"{NS}/ns", {"namespace": "ns", "visibility": "public"}))],
        "namespaces": [ok(api().get(NS))],
        "object": [ok(api().get(f"{NS}/ns/objects/o"))], "objects": [ok(api().get(f"{NS}/ns/objects"))],
        "property": [ok(api().get(f"{NS}/ns/properties/p"))], "properties": [ok(api().get(f"{NS}/ns/properties"))],
        "tag": [ok(api().get(f"{NS}/ns/tags/t"))], "tags": [ok(api().get(f"{NS}/ns/tags"))],
        "resource_type": ok(api().get(f"{NS}/ns/resource_types"))["resource_type_associations"],
        "resource_types": [ok(api().get(f"{NS}/ns/resource_types"))],
    }
    for path, bodies in answers.items():
        document = fetch(api, path)
        kind = jsonschema.validators.validator_for(document)  # as jsonschema.validate picks it
        kind.check_schema(document)
        validator = kind(document)
        for body in bodies:
            assert [error.message for error in validator.iter_errors(body)] == [], (path, body)
