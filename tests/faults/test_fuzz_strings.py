"""Fuzzing with text the databases cannot store: every place a client string enters gets a 400.

NUL characters and lone UTF-16 surrogates (JSON "\\ud800") in any field of a create or PATCH
body, in tags, member ids, property names and values, query filters, sort keys, markers, path
segments and headers; strings over their bounds. Each case is 400 with a message and leaves
every table as it was. Storable neighbours (control characters, astral planes, exactly the
bound) are stored and read back exactly, so the checks cannot pass by refusing everything.
Runs on the database the ``app`` fixture uses (SQLite, or IMAGEDATA_TEST_DATABASE_URL), with a
fixed seed; the random exploration of this class is the stateful run in test_fuzz.py, whose
hooks put the same strategies into every generated body, query and path.
"""
from __future__ import annotations

import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from imagedata.db import database
from imagedata.models import ALL_MODELS
from imagedata.schemas import MAX_NAME, MAX_PROPERTY_VALUE
from tests.faults.helpers import count, saw
from tests.faults.hostile import OVERLONG_NAME, OVERLONG_VALUE, STORABLE, UNSTORABLE, UNSTORABLE_IN_URL
from tests.helpers import with_env

# FUZZ_EXAMPLES=60 (for example) searches harder than CI's bounded run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12")) * 4
STRINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
JSON = {"Accept": "application/json"}
PATCH = "application/openstack-images-v2.1-json-patch"
DRAFT_PATCH = "application/openstack-images-v2.0-json-patch"


@pytest.fixture
def admin(admin_token):
    return {"X-Auth-Token": admin_token, **JSON}


@pytest.fixture
def image(client, admin):
    """A queued image with a tag, a property and a member."""
    body = {"name": "keep", "disk_format": "raw", "container_format": "bare", "tags": ["t1"], "prop": "v"}
    created = client.post("/v2/images", json=body, headers=admin).get_json()
    assert client.post(f"/v2/images/{created['id']}/members", json={"member": "p2"}, headers=admin).status_code == 200
    return created["id"]


def snapshot() -> dict:
    """Every row of every table, to prove a refused request changed nothing."""
    with database.connection_context():
        return {model.__name__: sorted(map(str, model.select().tuples())) for model in ALL_MODELS}


def assert_refused(response, wanted: str = "Invalid text") -> None:
    count("inputs fuzzed")
    saw(response.status_code, fuzz=True)
    assert response.status_code == 400, (response.status_code, response.data)
    message = response.get_json()["message"]
    assert wanted in message, message


FIELDS = ("name", "owner", "id", "visibility", "disk_format", "container_format", "tag", "property name",
          "property value", "nested value")


def with_text(where: str, text) -> dict:
    """An otherwise valid create body carrying ``text`` at ``where``."""
    body = {"name": "n", "disk_format": "raw", "container_format": "bare"}
    if where == "tag":
        body["tags"] = ["fine", text]
    elif where == "property name":
        body[text] = "v"
    elif where == "property value":
        body["prop"] = text
    elif where == "nested value":
        body["prop"] = {"deeper": [text]}  # not a string property at all, but the text is refused first
    else:
        body[where] = text
    return body


@STRINGS
@given(where=st.sampled_from(FIELDS), text=UNSTORABLE)
def test_unstorable_text_in_a_create_body(client, admin, where, text):
    before = snapshot()
    assert_refused(client.post("/v2/images", json=with_text(where, text), headers=admin))
    assert snapshot() == before


@STRINGS
@given(where=st.sampled_from(("name", "owner", "tag", "property name", "property value")),
       text=st.one_of(OVERLONG_NAME, OVERLONG_VALUE))
def test_overlong_text_in_a_create_body(client, admin, where, text):
    limit = MAX_PROPERTY_VALUE if where == "property value" else MAX_NAME
    if len(text) <= limit:
        text = text + "x" * (limit + 1 - len(text))
    before = snapshot()
    assert_refused(client.post("/v2/images", json=with_text(where, text), headers=admin), "does not match schema")
    assert snapshot() == before


@STRINGS
@given(where=st.sampled_from(("name", "owner", "tag", "property name", "property value")), text=STORABLE)
def test_storable_text_is_stored_exactly(client, admin, where, text):
    if where in ("tag", "property name"):
        text = "x_" + text  # not empty, not "fine", not an attribute of the image
    created = client.post("/v2/images", json=with_text(where, text), headers=admin)
    count("inputs fuzzed")
    assert created.status_code == 201, created.data
    image = client.get(f"/v2/images/{created.get_json()['id']}", headers=admin).get_json()
    if where == "tag":
        assert image["tags"] == ["fine", text]
    elif where == "property name":
        assert image[text] == "v"
    else:
        assert image["prop" if where == "property value" else where] == text


@pytest.mark.parametrize("where, limit", [("name", MAX_NAME), ("tag", MAX_NAME), ("property name", MAX_NAME),
                                          ("property value", MAX_PROPERTY_VALUE), ("owner", MAX_NAME)])
def test_text_at_its_bound_is_stored(client, admin, where, limit):
    text = "\U0001F600" * limit  # characters, not bytes: 4 UTF-8 bytes each
    created = client.post("/v2/images", json=with_text(where, text), headers=admin)
    assert created.status_code == 201, created.data


def patch_ops(kind: str, text: str) -> tuple[str, list]:
    """A one-operation patch document with ``text`` in the place ``kind`` names."""
    if kind == "draft dialect":
        return DRAFT_PATCH, [{"replace": "/name", "value": text}]
    if kind == "path to add":
        return PATCH, [{"op": "add", "path": f"/{text}", "value": "v"}]
    if kind == "path to remove":
        return PATCH, [{"op": "remove", "path": f"/{text}"}]
    if kind == "op":
        return PATCH, [{"op": text, "path": "/name", "value": "v"}]
    if kind == "tags":
        return PATCH, [{"op": "replace", "path": "/tags", "value": ["t1", text]}]
    return PATCH, [{"op": "replace" if kind in ("name", "owner", "prop") else "add", "path": f"/{kind}",
                    "value": text}]


@STRINGS
@given(kind=st.sampled_from(("name", "owner", "prop", "new_prop", "visibility", "disk_format", "tags",
                             "path to add", "path to remove", "op", "draft dialect")), text=UNSTORABLE)
def test_unstorable_text_in_a_patch(client, admin, image, kind, text):
    before = snapshot()
    media_type, ops = patch_ops(kind, text)
    assert_refused(client.patch(f"/v2/images/{image}", json=ops, headers={**admin, "Content-Type": media_type}))
    assert snapshot() == before


@STRINGS
@given(name=st.sampled_from(("name", "owner", "tag", "marker", "sort_key", "sort_dir", "sort", "status",
                             "visibility", "member_status", "disk_format", "container_format", "limit",
                             "size_min", "os_hidden", "prop")),
       text=UNSTORABLE_IN_URL, in_name=st.booleans())
def test_unstorable_text_in_a_query(client, admin, image, name, text, in_name):
    query = [(text, "x")] if in_name else [(name, text)]
    assert_refused(client.get("/v2/images", query_string=query, headers=admin))


@STRINGS
@given(name=st.sampled_from(("name", "owner", "tag", "status", "marker", "prop")),
       raw=st.sampled_from(("%ED%A0%80", "%FF", "%C0%AE", "%F4%90%80%80", "%E2%82", "%25%00")))
def test_undecodable_bytes_in_a_query_are_never_a_server_error(client, admin, image, name, raw):
    """Percent-escapes that are not UTF-8 (an encoded surrogate, overlong forms) reach us as literal text."""
    response = client.get(f"/v2/images?{name}={raw}", headers=admin)
    count("inputs fuzzed")
    saw(response.status_code, fuzz=True)
    if "%00" in raw:
        assert response.status_code == 400
    else:
        # A status filter is exact text like any other (Glance 33: status=bogus lists nothing);
        # only a marker must name an image.
        assert response.status_code == (400 if name == "marker" else 200), response.data


@STRINGS
@given(route=st.sampled_from(("PUT tags", "DELETE tags", "GET member", "PUT member", "DELETE member",
                              "GET image", "GET file")), text=UNSTORABLE_IN_URL)
def test_unstorable_text_in_a_path(client, admin, image, route, text):
    text = text.replace("/", "_")  # an escaped slash is a slash to the router (404 before any check)
    method, what = route.split()
    segment = quote(text, safe="")
    path = {"tags": f"/v2/images/{image}/tags/{segment}", "member": f"/v2/images/{image}/members/{segment}",
            "image": f"/v2/images/{segment}", "file": f"/v2/images/{segment}/file"}[what]
    before = snapshot()
    body = {"json": {"status": "accepted"}} if route == "PUT member" else {}
    assert_refused(client.open(path, method=method, headers=admin, **body))
    assert snapshot() == before


@STRINGS
@given(body=st.one_of(st.builds(lambda t: {"member": t}, st.one_of(UNSTORABLE, OVERLONG_NAME)),
                      st.builds(lambda t: {"member": "p3", t: "x"}, UNSTORABLE)))
def test_unstorable_or_overlong_member_ids(client, admin, image, body):
    before = snapshot()
    response = client.post(f"/v2/images/{image}/members", json=body, headers=admin)
    assert_refused(response, "Invalid")
    assert snapshot() == before


@pytest.fixture
def member_p2(make_token):
    return make_token("p2")


@STRINGS
@given(status=UNSTORABLE)
def test_unstorable_member_status(client, member_p2, image, status):
    before = snapshot()
    member = {"X-Auth-Token": member_p2, **JSON}
    assert_refused(client.put(f"/v2/images/{image}/members/p2", json={"status": status}, headers=member))
    assert snapshot() == before


HEADER_TEXT = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n\x00"), max_size=20)


@STRINGS
@given(header=st.sampled_from(("X-Image-Meta-Store", "x-openstack-image-size", "X-Openstack-Request-ID",
                               "Content-Type", "X-Anything")),
       text=st.builds(lambda head, tail: f"{head}\x00{tail}", HEADER_TEXT, HEADER_TEXT))
def test_unstorable_text_in_a_header(client, admin, image, header, text):
    """gunicorn itself refuses a raw NUL in a header (see test_fuzz.py); behind it, so do we."""
    headers = {**admin, "Content-Type": "application/octet-stream", header: text}
    before = snapshot()
    assert_refused(client.put(f"/v2/images/{image}/file", data=b"abc", headers=headers))
    assert snapshot() == before


def trusted(project: str) -> dict:
    return {"X-Identity-Status": "Confirmed", "X-Project-Id": project, "X-User-Id": "u", "X-Roles": "member",
            **JSON}


@with_env(IMAGEDATA_AUTH="trusted-headers")
@pytest.mark.parametrize("project, wanted", [("p" * (MAX_NAME + 1), "longer than"), ("p\x00", "Invalid text")])
def test_a_proxy_project_that_cannot_be_stored(client, project, wanted):
    before = snapshot()
    assert_refused(client.post("/v2/images", json={"name": "n"}, headers=trusted(project)), wanted)
    assert snapshot() == before
    assert client.post("/v2/images", json={"name": "n"}, headers=trusted("p" * MAX_NAME)).status_code == 201


def test_deeply_nested_json_is_400(client, admin):
    assert_refused(client.post("/v2/images", data="[" * 100_000, headers={**admin, "Content-Type": "application/json"}),
            "Malformed JSON")


def test_the_database_safety_net(app, client, admin):
    """Text that slips past the checks still gets 400 from the driver's own encoding error."""
    from imagedata.models import Image

    def store_raw():
        Image.insert(id="00000000-0000-0000-0000-00000000beef", name="\ud800").execute()

    app.add_url_rule("/v2/test-only/store-raw", "store_raw", store_raw, methods=["POST"])
    response = client.post("/v2/test-only/store-raw", headers=admin)
    assert response.status_code == 400, response.data
    assert response.get_json()["message"] == "A text value in the request cannot be stored."
