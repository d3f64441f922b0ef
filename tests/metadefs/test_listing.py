"""GET /v2/metadefs/namespaces: visibility, filters, order and paging, as Glance 33 answers."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.metadefs.conftest import NS, SQLITE_ONLY, created, message, ok

RT = "resource_types=PG"


@pytest.fixture
def namespaces(api):
    """pg0..pg3 (odd ones public) and project A's private pga, all associated with PG, created in that order."""
    for index in range(4):
        created(api().post(NS, {"namespace": f"pg{index}", "visibility": "public" if index % 2 else "private",
                                "resource_type_associations": [{"name": "PG"}]}))
    created(api().post(NS, {"namespace": "pga", "owner": "proj-a", "resource_type_associations": [{"name": "PG"}]}))


def names(body) -> list[str]:
    return [item["namespace"] for item in body["namespaces"]]


def test_newest_first_with_associations(api, namespaces):
    body = ok(api().get(f"{NS}?{RT}"))
    assert names(body) == ["pga", "pg3", "pg2", "pg1", "pg0"]  # created in one second: ties go by creation
    assert body["first"] == f"{NS}?{RT}" and body["schema"] == "/v2/schemas/metadefs/namespaces"
    assert "next" not in body
    assert [a["name"] for a in body["namespaces"][0]["resource_type_associations"]] == ["PG"]
    assert "objects" not in body["namespaces"][0]


def test_pages_follow_next_until_the_end(api, namespaces):
    seen, url = [], f"{NS}?{RT}&limit=2"
    while url:
        body = ok(api().get(url))
        seen += names(body)
        assert body["first"] == f"{NS}?{RT}&limit=2"
        url = body.get("next")
        if url:
            assert dict(parse_qsl(urlsplit(url).query)) == {"resource_types": "PG", "limit": "2",
                                                            "marker": names(body)[-1]}
    assert seen == ["pga", "pg3", "pg2", "pg1", "pg0"]


@pytest.mark.parametrize("query, expected", [
    ("sort_key=namespace&sort_dir=asc", ["pg0", "pg1", "pg2", "pg3", "pga"]),
    ("sort_key=namespace&limit=1", ["pga"]),
    ("sort_key=namespace&sort_dir=asc&marker=pg1", ["pg2", "pg3", "pga"]),
    ("sort_key=display_name&sort_dir=asc", ["pg0", "pg1", "pg2", "pg3", "pga"]),  # all null: by creation
    ("visibility=private", ["pga", "pg2", "pg0"]),
    ("visibility=public&marker=pg3", ["pg1"]),
    ("limit=0", []),
    ("foo=bar", ["pga", "pg3", "pg2", "pg1", "pg0"]),
])
def test_order_and_filters(api, namespaces, query, expected):
    assert names(ok(api().get(f"{NS}?{RT}&{query}"))) == expected


def test_resource_types_filter(api, namespaces):
    created(api().post(NS, {"namespace": "other", "resource_type_associations": [{"name": "OTHER"}]}))
    assert names(ok(api().get(f"{NS}?resource_types=OTHER"))) == ["other"]
    assert names(ok(api().get(f"{NS}?resource_types=OTHER,PG&sort_key=namespace&sort_dir=asc"))) == [
        "other", "pg0", "pg1", "pg2", "pg3", "pga"]
    assert names(ok(api().get(f"{NS}?resource_types=NOPE"))) == []


@pytest.mark.parametrize("caller, expected", [
    ("a-member", ["pga", "pg3", "pg1"]),   # public ones and project A's own
    ("a-reader", ["pga", "pg3", "pg1"]),
    ("b-member", ["pg3", "pg1"]),
])
def test_projects_see_public_and_their_own(api, namespaces, caller, expected):
    assert names(ok(api(caller).get(f"{NS}?{RT}"))) == expected


def test_a_caller_without_roles_lists_nothing(api, namespaces):
    response = api("a-noroles").get(f"{NS}?{RT}")
    assert (response.status_code, message(response)) == (
        403, "You are not authorized to complete get_metadef_namespaces action.")


@SQLITE_ONLY
@pytest.mark.parametrize("query, status, text", [
    ("visibility=shared", 400, "Invalid visibility value: shared"),
    ("sort_dir=up", 400, "Invalid sort direction: up"),
    ("limit=-1", 400, "limit param must be positive"),
    ("limit=abc", 400, "limit param must be an integer"),  # Glance: 500
    ("sort_key=bogus", 400, "Invalid sort key: bogus. It must be one of: created_at, updated_at, namespace, "
                            "display_name, description, visibility, protected, owner, id"),  # Glance: 500
    ("marker=nope", 404, "Metadata definition namespace=nope was not found."),
])
def test_bad_list_parameters(api, namespaces, query, status, text):
    response = api().get(f"{NS}?{query}")
    assert (response.status_code, message(response)) == (status, text)


def test_a_marker_the_caller_cannot_see_is_not_found(api, namespaces):
    # Glance: 403 "... is not visible", which tells that it exists.
    response = api("b-member").get(f"{NS}?{RT}&marker=pga")
    assert (response.status_code, message(response)) == (404, "Metadata definition namespace=pga was not found.")
