"""Who sees and changes which namespace: Glance 33's default policy, and an operator's override.

Glance's defaults: a namespace is seen by admins, by readers of its owner's project and, when
public, by readers of any project; only admins write. A namespace a caller cannot see is 404; one
they see but may not change is 403. The table was observed on the real Glance 33 (fakeauth).
"""
from __future__ import annotations

import pytest

from tests.helpers import with_env
from tests.metadefs.conftest import NS, created, message, ok

DB_BACKENDS = ("sqlite",)  # the rules are evaluated in Python; the listings' SQL runs on both in test_listing


@pytest.fixture(autouse=True)
def namespaces(api):
    """The admin's public and private namespaces, and a private one owned by project A."""
    for name, extra in (("pub", {"visibility": "public"}), ("priv", {}), ("owned", {"owner": "proj-a"})):
        created(api().post(NS, {"namespace": name, **extra, "objects": [{"name": "o"}], "tags": [{"name": "t"}],
                                "properties": {"p": {"title": "P", "type": "string"}}}))


READS = ("", "/objects", "/objects/o", "/properties", "/properties/p", "/tags", "/tags/t", "/resource_types")


@pytest.mark.parametrize("caller, namespace, status", [
    ("admin", "priv", 200), ("admin", "owned", 200),
    ("a-member", "pub", 200), ("a-reader", "pub", 200), ("b-member", "pub", 200),
    ("a-member", "priv", 404), ("a-reader", "priv", 404),
    ("a-member", "owned", 200), ("a-reader", "owned", 200), ("b-member", "owned", 404),
    ("a-noroles", "pub", 404), ("a-noroles", "owned", 404),
])
def test_reads(api, caller, namespace, status):
    for path in READS:
        response = api(caller).get(f"{NS}/{namespace}{path}")
        assert response.status_code == status, (path, response.get_data(as_text=True))
    if status == 404:
        assert message(api(caller).get(f"{NS}/{namespace}")) == (
            f"Metadata definition namespace={namespace} was not found.")


WRITES = [
    ("PUT", "", {"namespace": "{ns}"}, "modify_metadef_namespace"),
    ("DELETE", "", None, "delete_metadef_namespace"),
    ("POST", "/objects", {"name": "x"}, "add_metadef_object"),
    ("PUT", "/objects/o", {"name": "o"}, "modify_metadef_object"),
    ("DELETE", "/objects/o", None, "delete_metadef_object"),
    ("DELETE", "/objects", None, "delete_metadef_namespace"),
    ("POST", "/properties", {"name": "x", "title": "X", "type": "string"}, "add_metadef_property"),
    ("PUT", "/properties/p", {"name": "p", "title": "X", "type": "string"}, "modify_metadef_property"),
    ("DELETE", "/properties/p", None, "remove_metadef_property"),
    ("DELETE", "/properties", None, "delete_metadef_namespace"),
    ("POST", "/tags/x", None, "add_metadef_tag"),
    ("POST", "/tags", {"tags": [{"name": "x"}]}, "add_metadef_tags"),
    ("PUT", "/tags/t", {"name": "x"}, "modify_metadef_tag"),
    ("DELETE", "/tags/t", None, "delete_metadef_tag"),
    ("DELETE", "/tags", None, "delete_metadef_namespace"),
    ("POST", "/resource_types", {"name": "X"}, "add_metadef_resource_type_association"),
]


@pytest.mark.parametrize("caller, namespace, status", [
    ("a-member", "pub", 403), ("a-member", "owned", 403), ("a-reader", "owned", 403),
    ("a-member", "priv", 404), ("b-member", "owned", 404),
])
def test_writes_are_for_admins(api, caller, namespace, status):
    for method, path, body, rule in WRITES:
        if isinstance(body, dict) and "namespace" in body:
            body = {"namespace": namespace}
        response = api(caller).request(method, f"{NS}/{namespace}{path}", body)
        assert response.status_code == status, (method, path, response.get_data(as_text=True))
        if status == 403:
            assert message(response) == f"You are not authorized to complete {rule} action."
    refused = api(caller).post(NS, {"namespace": "new"})
    assert (refused.status_code, message(refused)) == (
        403, "You are not authorized to complete add_metadef_namespace action.")
    assert len(ok(api().get(f"{NS}/{namespace}"))["objects"]) == 1  # nothing changed


@with_env(IMAGEDATA_POLICY="add_metadef_namespace=admin or member; modify_metadef_namespace=admin or (member and "
                           "owner); add_metadef_object=admin or (member and owner)")
def test_an_operator_lets_members_manage_their_own(api):
    made = created(api("a-member").post(NS, {"namespace": "mine"}))
    assert made["owner"] == "proj-a"
    assert api("a-member").put(f"{NS}/mine", {"namespace": "mine", "visibility": "public"}).status_code == 200
    assert api("a-member").post(f"{NS}/mine/objects", {"name": "x"}).status_code == 201
    assert api("b-member").post(f"{NS}/mine/objects", {"name": "y"}).status_code == 403  # public, not theirs
    assert api("a-member").delete(f"{NS}/mine").status_code == 403  # still the default rule


def test_resource_types_are_listed_to_readers(api):
    assert ok(api("a-reader").get("/v2/metadefs/resource_types"))["resource_types"] == []
    response = api("a-noroles").get("/v2/metadefs/resource_types")
    assert (response.status_code, message(response)) == (
        403, "You are not authorized to complete list_metadef_resource_types action.")
