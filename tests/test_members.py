"""Image members: sharing a `shared` image, accept / reject, and what each status lets a member do.

Glance: a member project with *any* status (pending, accepted, rejected) can GET the image and its
data; the default listing shows a shared image to a member only once accepted. Only the owner (or an
admin) adds and removes members; only the member project itself answers. Only shared images have
members.
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import store_files

OCTET = "application/octet-stream"
JSON = {"Accept": "application/json"}
DATA = b"shared bytes"
MEMBER_KEYS = {"image_id", "member_id", "status", "created_at", "updated_at", "schema"}


@pytest.fixture
def who(make_token):
    """Headers of each caller: p1 owns the images; p2 and p3 are other projects."""
    spec = {"owner": ("p1", ("member", "reader")), "owner-reader": ("p1", ("reader",)),
            "p2": ("p2", ("member", "reader")), "p2-reader": ("p2", ("reader",)),
            "p3": ("p3", ("member", "reader")), "admin": ("ops", ("admin",)), "p1-noroles": ("p1", ())}
    return {name: {"X-Auth-Token": make_token(project, roles), **JSON} for name, (project, roles) in spec.items()}


def create(client, hdrs, visibility="shared", upload=True):
    response = client.post("/v2/images", json={"name": "s", "disk_format": "raw", "container_format": "bare",
                                               "visibility": visibility}, headers=hdrs)
    assert response.status_code == 201, response.data
    image_id = response.get_json()["id"]
    if upload:
        put = client.put(f"/v2/images/{image_id}/file", data=DATA, headers={**hdrs, "Content-Type": OCTET})
        assert put.status_code == 204, put.data
    return image_id


def add(client, image_id, hdrs, member="p2"):
    return client.post(f"/v2/images/{image_id}/members", data=json.dumps({"member": member}),
                       content_type="application/json", headers=hdrs)


def answer(client, image_id, hdrs, status, member="p2"):
    return client.put(f"/v2/images/{image_id}/members/{member}", data=json.dumps({"status": status}),
                      content_type="application/json", headers=hdrs)


def members_of(client, image_id, hdrs):
    response = client.get(f"/v2/images/{image_id}/members", headers=hdrs)
    if response.status_code != 200:
        return response.status_code
    body = response.get_json()
    assert body["schema"] == "/v2/schemas/members"
    return {m["member_id"]: m["status"] for m in body["members"]}


def listed(client, hdrs, query=""):
    response = client.get(f"/v2/images?limit=1000{query}", headers=hdrs)
    assert response.status_code == 200, response.data
    return {image["id"] for image in response.get_json()["images"]}


@pytest.fixture
def image(client, who):
    """p1's active shared image, no members yet."""
    return create(client, who["owner"])


# --------------------------------------------------------------------------- adding


def test_owner_adds_member_pending(client, who, image):
    response = add(client, image, who["owner"])
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert set(body) == MEMBER_KEYS
    assert (body["image_id"], body["member_id"], body["status"]) == (image, "p2", "pending")
    assert body["schema"] == "/v2/schemas/member"
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")


def test_admin_adds_member(client, who, image):
    assert add(client, image, who["admin"]).status_code == 200
    assert members_of(client, image, who["owner"]) == {"p2": "pending"}


def test_add_duplicate_member_is_409(client, who, image):
    assert add(client, image, who["owner"]).status_code == 200
    assert add(client, image, who["owner"]).status_code == 409
    assert answer(client, image, who["p2"], "accepted").status_code == 200
    assert add(client, image, who["owner"]).status_code == 409
    assert members_of(client, image, who["owner"]) == {"p2": "accepted"}


@pytest.mark.parametrize("visibility", ["private", "public", "community"])
def test_only_shared_images_have_members(client, who, visibility):
    creator = who["admin"] if visibility == "public" else who["owner"]
    image_id = create(client, creator, visibility=visibility, upload=False)
    response = add(client, image_id, creator)
    assert response.status_code == 403
    assert "shared" in response.get_json()["message"]


# Glance 33 (the real one agrees: each project's listings in tests/migrate/test_migrate_glance.py):
# listing the members of an image that is not shared is 403 "Not allowed to list members" for
# everyone who can see the image, admins included; showing one membership there is 404 "Only
# shared images have members".
@pytest.mark.parametrize("visibility, caller", [("public", "admin"), ("public", "p2"), ("community", "owner"),
                                                ("community", "p3"), ("community", "admin"), ("private", "owner"),
                                                ("private", "admin")])
def test_members_of_an_image_that_is_not_shared_are_403(client, who, visibility, caller):
    creator = who["admin"] if visibility == "public" else who["owner"]
    image_id = create(client, creator, visibility=visibility, upload=False)
    response = client.get(f"/v2/images/{image_id}/members", headers=who[caller])
    assert response.status_code == 403
    assert response.get_json()["message"] == f"Not allowed to list members for image {image_id}."
    shown = client.get(f"/v2/images/{image_id}/members/p2", headers=who[caller])
    assert shown.status_code == 404
    assert shown.get_json()["message"] == "Only shared images have members."


def test_members_of_a_private_image_stay_404_for_others(client, who):
    image_id = create(client, who["owner"], visibility="private", upload=False)
    assert client.get(f"/v2/images/{image_id}/members", headers=who["p2"]).status_code == 404


@pytest.mark.parametrize("caller, expected", [("owner-reader", 403), ("p3", 404), ("p1-noroles", 404)])
def test_add_member_needs_owner_member(client, who, image, caller, expected):
    assert add(client, image, who[caller], member="p9").status_code == expected
    assert members_of(client, image, who["owner"]) == {}


def test_member_cannot_add_other_members(client, who, image):
    assert add(client, image, who["owner"]).status_code == 200
    assert add(client, image, who["p2"], member="p3").status_code == 403
    assert answer(client, image, who["p2"], "accepted").status_code == 200
    assert add(client, image, who["p2"], member="p3").status_code == 403
    assert members_of(client, image, who["owner"]) == {"p2": "accepted"}


@pytest.mark.parametrize("body", [{}, {"member": ""}, {"member": 5}, {"member_id": "p2"}, [], "p2"])
def test_add_member_bad_body_is_400(client, who, image, body):
    response = client.post(f"/v2/images/{image}/members", data=json.dumps(body), content_type="application/json",
                           headers=who["owner"])
    assert response.status_code == 400, response.data


def test_add_member_to_unknown_image_is_404(client, who):
    assert add(client, "6b1d3a06-0000-4000-8000-000000000000", who["owner"]).status_code == 404


# --------------------------------------------------------------------------- what each member status allows

# (member status, listed by default, GET image, GET file)
STATUS_EFFECTS = [
    ("pending", False, 200, 200),
    ("accepted", True, 200, 200),
    ("rejected", False, 200, 200),
]


@pytest.mark.parametrize("status, listed_default, show, download", STATUS_EFFECTS)
def test_member_status_effects(client, who, image, status, listed_default, show, download):
    assert add(client, image, who["owner"]).status_code == 200
    if status != "pending":
        assert answer(client, image, who["p2"], status).status_code == 200
    assert (image in listed(client, who["p2"])) is listed_default
    assert image in listed(client, who["p2"], f"&member_status={status}")
    assert image in listed(client, who["p2"], "&member_status=all")
    others = {"pending", "accepted", "rejected"} - {status}
    for other in others:
        assert image not in listed(client, who["p2"], f"&member_status={other}")
    assert client.get(f"/v2/images/{image}", headers=who["p2"]).status_code == show
    got = client.get(f"/v2/images/{image}/file", headers=who["p2"])
    assert (got.status_code, got.data) == (download, DATA)
    # A reader of the member project can see but not download; nobody else sees it at all.
    assert client.get(f"/v2/images/{image}", headers=who["p2-reader"]).status_code == 200
    assert client.get(f"/v2/images/{image}/file", headers=who["p2-reader"]).status_code == 403
    assert client.get(f"/v2/images/{image}", headers=who["p3"]).status_code == 404
    assert client.get(f"/v2/images/{image}/file", headers=who["p3"]).status_code == 404
    assert image not in listed(client, who["p3"], "&member_status=all")
    # The owner always lists its image, whatever the member's status.
    assert image in listed(client, who["owner"])


def test_member_may_not_upload_modify_or_delete(client, who, tmp_path):
    queued = create(client, who["owner"], upload=False)
    assert add(client, queued, who["owner"]).status_code == 200
    assert answer(client, queued, who["p2"], "accepted").status_code == 200
    assert client.put(f"/v2/images/{queued}/file", data=b"x",
                      headers={**who["p2"], "Content-Type": OCTET}).status_code == 403
    assert store_files(tmp_path) == []
    assert client.get(f"/v2/images/{queued}", headers=who["owner"]).get_json()["status"] == "queued"
    patch = client.patch(f"/v2/images/{queued}", data=json.dumps([{"op": "replace", "path": "/name", "value": "x"}]),
                         content_type="application/openstack-images-v2.1-json-patch", headers=who["p2"])
    assert patch.status_code == 403
    assert client.delete(f"/v2/images/{queued}", headers=who["p2"]).status_code == 403
    assert client.post(f"/v2/images/{queued}/actions/deactivate", headers=who["p2"]).status_code == 403


def test_status_can_change_back_and_forth(client, who, image):
    assert add(client, image, who["owner"]).status_code == 200
    for status in ("accepted", "rejected", "pending", "accepted"):
        response = answer(client, image, who["p2"], status)
        assert response.status_code == 200, response.data
        assert response.get_json()["status"] == status
        assert (image in listed(client, who["p2"])) is (status == "accepted")
    assert members_of(client, image, who["owner"]) == {"p2": "accepted"}


# --------------------------------------------------------------------------- who may answer


@pytest.mark.parametrize("caller, expected", [
    ("owner", 403),        # the owner cannot accept on the member's behalf
    ("admin", 403),        # our rule: only the member project itself (Glance lets an admin)
    ("p2-reader", 403),    # modify_member needs the member role
    ("p3", 404),           # cannot see the image at all
    ("p1-noroles", 404),
])
def test_only_the_member_project_answers(client, who, image, caller, expected):
    assert add(client, image, who["owner"]).status_code == 200
    response = answer(client, image, who[caller], "accepted")
    assert response.status_code == expected, response.data
    assert members_of(client, image, who["owner"]) == {"p2": "pending"}


def test_member_cannot_answer_for_another_member(client, who, image):
    assert add(client, image, who["owner"]).status_code == 200
    assert add(client, image, who["owner"], member="p3").status_code == 200
    response = answer(client, image, who["p2"], "accepted", member="p3")
    assert response.status_code in (403, 404), response.data
    assert members_of(client, image, who["owner"]) == {"p2": "pending", "p3": "pending"}


@pytest.mark.parametrize("body", [{"status": "bogus"}, {"status": "ACCEPTED"}, {}, {"status": None}, []])
def test_answer_with_bad_status_is_400(client, who, image, body):
    assert add(client, image, who["owner"]).status_code == 200
    response = client.put(f"/v2/images/{image}/members/p2", data=json.dumps(body), content_type="application/json",
                          headers=who["p2"])
    assert response.status_code == 400, response.data
    assert members_of(client, image, who["owner"]) == {"p2": "pending"}


def test_answer_unknown_membership_is_404(client, who, image):
    assert add(client, image, who["owner"], member="p3").status_code == 200
    # p2 is not a member: the image itself is hidden from it.
    assert answer(client, image, who["p2"], "accepted").status_code == 404


# --------------------------------------------------------------------------- reading members


def test_owner_sees_all_members_member_sees_itself(client, who, image):
    for member in ("p2", "p3", "p4"):
        assert add(client, image, who["owner"], member=member).status_code == 200
    everyone = {"p2": "pending", "p3": "pending", "p4": "pending"}
    assert members_of(client, image, who["owner"]) == everyone
    assert members_of(client, image, who["owner-reader"]) == everyone
    assert members_of(client, image, who["admin"]) == everyone
    assert members_of(client, image, who["p2"]) == {"p2": "pending"}
    assert members_of(client, image, who["p2-reader"]) == {"p2": "pending"}
    assert members_of(client, image, who["p1-noroles"]) == 404


def test_show_member(client, who, image):
    assert add(client, image, who["owner"]).status_code == 200
    assert add(client, image, who["owner"], member="p3").status_code == 200
    own = client.get(f"/v2/images/{image}/members/p2", headers=who["p2"])
    assert own.status_code == 200 and set(own.get_json()) == MEMBER_KEYS
    assert own.get_json()["member_id"] == "p2"
    assert client.get(f"/v2/images/{image}/members/p3", headers=who["owner"]).status_code == 200
    # A member cannot look at another member's record.
    assert client.get(f"/v2/images/{image}/members/p3", headers=who["p2"]).status_code == 404
    assert client.get(f"/v2/images/{image}/members/p9", headers=who["owner"]).status_code == 404


def test_non_member_cannot_list_members(client, who, image):
    assert add(client, image, who["owner"]).status_code == 200
    assert members_of(client, image, who["p3"]) == 404


# --------------------------------------------------------------------------- removing


def test_owner_removes_member(client, who, image):
    assert add(client, image, who["owner"]).status_code == 200
    assert answer(client, image, who["p2"], "accepted").status_code == 200
    assert image in listed(client, who["p2"])
    assert client.delete(f"/v2/images/{image}/members/p2", headers=who["owner"]).status_code == 204
    assert client.get(f"/v2/images/{image}", headers=who["p2"]).status_code == 404
    assert client.get(f"/v2/images/{image}/file", headers=who["p2"]).status_code == 404
    assert image not in listed(client, who["p2"], "&member_status=all")
    assert client.delete(f"/v2/images/{image}/members/p2", headers=who["owner"]).status_code == 404
    # And it can be added again, pending once more.
    assert add(client, image, who["owner"]).get_json()["status"] == "pending"


@pytest.mark.parametrize("caller, expected", [("p2", 403), ("owner-reader", 403), ("p3", 404)])
def test_only_owner_member_removes(client, who, image, caller, expected):
    assert add(client, image, who["owner"]).status_code == 200
    assert client.delete(f"/v2/images/{image}/members/p2", headers=who[caller]).status_code == expected
    assert members_of(client, image, who["owner"]) == {"p2": "pending"}


def test_admin_removes_member(client, who, image):
    assert add(client, image, who["owner"]).status_code == 200
    assert client.delete(f"/v2/images/{image}/members/p2", headers=who["admin"]).status_code == 204
    assert members_of(client, image, who["owner"]) == {}


# --------------------------------------------------------------------------- visibility changes


def test_members_lose_access_when_image_stops_being_shared(client, who, image):
    assert add(client, image, who["owner"]).status_code == 200
    assert answer(client, image, who["p2"], "accepted").status_code == 200
    patch = client.patch(f"/v2/images/{image}", data=json.dumps([{"op": "replace", "path": "/visibility",
                                                                   "value": "private"}]),
                         content_type="application/openstack-images-v2.1-json-patch", headers=who["owner"])
    assert patch.status_code == 200, patch.data
    assert client.get(f"/v2/images/{image}", headers=who["p2"]).status_code == 404
    assert client.get(f"/v2/images/{image}/file", headers=who["p2"]).status_code == 404
    assert image not in listed(client, who["p2"], "&member_status=all")
    assert answer(client, image, who["p2"], "rejected").status_code == 404


def test_deleted_image_members_are_gone(client, who, image):
    assert add(client, image, who["owner"]).status_code == 200
    assert client.delete(f"/v2/images/{image}", headers=who["owner"]).status_code == 204
    assert client.get(f"/v2/images/{image}/members", headers=who["owner"]).status_code == 404
    assert client.get(f"/v2/images/{image}", headers=who["p2"]).status_code == 404
