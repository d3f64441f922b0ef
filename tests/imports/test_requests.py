"""The import API's answers, pinned, each calibrated against the real Glance 33.

Every row was run against Glance 33.0.0 (multi-store, its default policies, web-download
allowed to a loopback origin) and against imagedata; the code is the same unless the row
says ``glance=``: then docs/import.rst ("Where import differs from Glance") says why.
"""
from __future__ import annotations

import pytest

from tests.imports.helpers import GLANCE_DIRECT, MIB, NO_SUCH_ID, blob, copy_image, web_download

pytestmark = pytest.mark.e2e

DATA = blob(MIB, 3)


def queued(api, **fields):
    return api.create(**fields)


def staged(api, **fields):
    image_id = api.create(**fields)
    assert api.stage(image_id, DATA).status_code == 204
    return image_id


def active(api):
    image_id = api.create()
    assert api.upload(image_id, DATA).status_code == 204
    return image_id


# (case, image maker, who sends it, headers, expected code, Glance's code when it differs)
STAGE = [
    ("queued", queued, "member", {}, 204, None),
    ("staged-again", staged, "member", {}, 409, None),
    ("active", active, "member", {}, 409, None),
    ("formats-unset", lambda api: api.create(disk_format=None, container_format=None), "member", {}, 204, None),
    ("size-header-mismatch", queued, "member", {"x-openstack-image-size": "5"}, 400, None),
    ("text-plain", queued, "member", {"Content-Type": "text/plain"}, 415, None),
    ("other-project", queued, "stranger", {}, 404, None),
    ("admin-of-another-project", queued, "admin", {}, 204, None),
]


@pytest.mark.parametrize("case,make,who,headers,code,glance", STAGE, ids=[row[0] for row in STAGE])
def test_stage(request, member, case, make, who, headers, code, glance):
    image_id = make(member)
    response = request.getfixturevalue(who).stage(image_id, DATA, **headers)
    assert response.status_code == code, response.text
    if code == 204:
        image = member.show(image_id)
        # Glance: the size is known once staged, the digests once imported
        assert image["status"] == "uploading" and image["size"] == len(DATA) and image["checksum"] is None


def test_stage_unknown_image_and_over_the_cap(member):
    assert member.stage(NO_SUCH_ID, DATA).status_code == 404
    image_id = member.create()
    response = member.stage(image_id, blob(13 * MIB, 4))
    assert response.status_code == 413 and "image size cap" in response.text
    assert member.show(image_id)["status"] == "queued"


# (case, image maker, who, body, headers, expected code, Glance's code when it differs)
def imports(origin_url):
    wd = web_download(origin_url)
    return [
        ("body-not-an-object", queued, "member", [], {}, 400, 500),
        ("no-method", queued, "member", {}, {}, 400, None),
        ("method-not-an-object", queued, "member", {"method": "glance-direct"}, {}, 400, 500),
        ("no-method-name", queued, "member", {"method": {}}, {}, 400, None),
        ("unknown-method", queued, "member", {"method": {"name": "nope"}}, {}, 400, None),
        ("glance-download", queued, "member", {"method": {"name": "glance-download"}}, {}, 400, None),
        ("other-project", queued, "stranger", GLANCE_DIRECT, {}, 404, None),
        ("glance-direct-on-queued", queued, "member", GLANCE_DIRECT, {}, 409, None),
        ("glance-direct-on-active", active, "member", GLANCE_DIRECT, {}, 409, None),
        ("glance-direct-formats-unset", lambda api: staged(api, disk_format=None, container_format=None), "member",
         GLANCE_DIRECT, {}, 409, None),
        ("web-download-no-uri", queued, "member", {"method": {"name": "web-download"}}, {}, 400, None),
        ("web-download-uri-not-a-string", queued, "member", web_download(5), {}, 400, 500),
        ("web-download-refused-url", queued, "member", web_download("http://10.1.2.3/image"), {}, 400, None),
        ("web-download-ftp", queued, "member", web_download("ftp://127.0.0.1/image"), {}, 400, None),
        ("web-download-on-uploading", staged, "member", wd, {}, 409, None),
        ("web-download-on-active", active, "member", wd, {}, 409, None),
        ("web-download-formats-unset", lambda api: api.create(disk_format=None, container_format=None), "member",
         wd, {}, 409, None),
        ("unknown-store", queued, "member", {**wd, "stores": ["nope"]}, {}, 409, None),
        ("unknown-store-header", queued, "member", wd, {"X-Image-Meta-Store": "nope"}, 409, None),
        ("stores-not-a-list", queued, "member", {**wd, "stores": "local"}, {}, 400, 409),
        ("all-stores-and-stores", queued, "member", {**wd, "all_stores": True, "stores": ["local"]}, {}, 400, None),
        ("stores-and-header", queued, "member", {**wd, "stores": ["local"]}, {"X-Image-Meta-Store": "slow"}, 400,
         None),
        ("all-stores-and-header", queued, "member", {**wd, "all_stores": True}, {"X-Image-Meta-Store": "slow"}, 400,
         None),
        ("all-stores-not-a-boolean", queued, "member", {**wd, "all_stores": "yes"}, {}, 400, None),
        ("must-succeed-not-a-boolean", queued, "member", {**wd, "all_stores_must_succeed": "no"}, {}, 400, None),
        ("copy-image-by-a-member", active, "member", copy_image("slow"), {}, 403, None),
        ("copy-image-on-queued", queued, "admin", copy_image("slow"), {}, 409, None),
        ("copy-image-to-its-store", active, "admin", copy_image("local"), {}, 400, None),
        ("copy-image-without-stores", active, "admin", copy_image(), {}, 400, None),
        ("copy-image-unknown-store", active, "admin", copy_image("nope"), {}, 409, None),
        ("copy-image-header-to-its-store", active, "admin", copy_image(), {"X-Image-Meta-Store": "local"}, 400, None),
        ("copy-image-all-stores-none-left", active, "admin", copy_image(all_stores=True), {}, 202, None),
    ]


CASES = [row[0] for row in imports("")]


@pytest.mark.parametrize("case", CASES)
def test_import_request(request, member, admin, origin, case):
    origin.configure(DATA)
    _, make, who, body, headers, code, glance = next(row for row in imports(origin.url()) if row[0] == case)
    image_id = make(member)
    if case == "copy-image-all-stores-none-left":
        admin.imported(image_id, copy_image("slow"))
        before = admin.tasks(image_id)
    response = request.getfixturevalue(who).start(image_id, body, **headers)
    assert response.status_code == code, response.text
    if case == "copy-image-all-stores-none-left":
        assert admin.tasks(image_id) == before  # Glance: 202 and nothing to do, no task
    elif code != 202:
        assert member.tasks(image_id) == []
    assert origin.connections == []


def test_import_of_unknown_or_malformed(member):
    assert member.start(NO_SUCH_ID, GLANCE_DIRECT).status_code == 404
    image_id = member.create()
    response = member.session.post(f"{member.url}/v2/images/{image_id}/import", data="{",
                                   headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400 and "Malformed JSON" in response.text


def test_one_import_at_a_time_and_the_reserved_properties(member, origin):
    origin.configure(blob(3 * MIB, 6), stall_after=MIB)
    image_id = member.create()
    assert member.start(image_id, web_download(origin.url())).status_code == 202
    image = member.show(image_id)
    assert image["status"] == "importing"
    assert image["os_glance_import_task"] == member.tasks(image_id)[0]["id"]
    assert image["os_glance_importing_to_stores"] == "local" and image["os_glance_failed_import"] == ""
    assert member.start(image_id, web_download(origin.url())).status_code == 409
    assert member.stage(image_id, DATA).status_code == 409
    staged_id = staged(member)
    assert member.start(staged_id, GLANCE_DIRECT).status_code == 202
    assert member.start(staged_id, GLANCE_DIRECT).status_code == 409  # Glance: 409 "Image has active task"
    origin.configure(DATA)  # the stalled download ends at the idle timeout
    assert member.wait_task(image_id)["status"] == "failure"
    assert member.wait_task(staged_id)["status"] == "success"


# (case, image maker, who, store, expected code, Glance's code when it differs)
DELETE_COPY = [
    ("by-a-member", "two", "member", "slow", 403, None),
    ("unknown-store", "two", "admin", "nope", 409, None),
    ("one-copy", "two", "admin", "slow", 204, None),
    ("store-without-a-copy", "one", "admin", "slow", 404, 403),
    ("last-copy", "one", "admin", "local", 403, None),
    ("queued-image", "queued", "admin", "local", 409, None),
    ("deactivated-image", "deactivated", "admin", "local", 409, None),
]


@pytest.mark.parametrize("case,state,who,store,code,glance", DELETE_COPY, ids=[row[0] for row in DELETE_COPY])
def test_delete_one_copy(request, member, admin, case, state, who, store, code, glance):
    image_id = queued(member) if state == "queued" else active(member)
    if state == "two":
        assert admin.imported(image_id, copy_image("slow"))[0]["status"] == "success"
    if state == "deactivated":
        assert admin.session.post(f"{admin.url}/v2/images/{image_id}/actions/deactivate", timeout=10).status_code == 204
    response = request.getfixturevalue(who).delete_copy(store, image_id)
    assert response.status_code == code, response.text
    if code == 204:
        assert member.show(image_id)["stores"] == "local" and member.data(image_id) == DATA
    assert admin.delete_copy("local", NO_SUCH_ID).status_code == 404


def test_the_tasks_of_an_image(member, admin, stranger):
    image_id = staged(member)
    response = member.start(image_id, GLANCE_DIRECT)
    assert member.wait_task(image_id)["status"] == "success"
    admin.imported(image_id, copy_image("slow"))
    listed = member.tasks(image_id)  # Glance hides an admin's copy-image from the owner
    # newest first, to the second (Glance's precision): two tasks of one second come in either order
    copied, imported = sorted(listed, key=lambda task: task["input"]["import_req"]["method"]["name"])
    assert imported["request_id"] == response.headers["x-openstack-request-id"]
    assert imported["input"]["import_req"] == GLANCE_DIRECT and imported["message"] == "Copied 1 MiB to store local"
    assert copied["input"]["backend"] == ["slow"] and copied["user_id"] != imported["user_id"]
    for task in (copied, imported):
        assert task["type"] == "api_image_import" and task["status"] == "success" and task["owner"] == "p1"
        assert {"id", "created_at", "updated_at", "expires_at", "result", "image_id"} <= set(task)
    assert listed[0]["created_at"] >= listed[1]["created_at"] and admin.tasks(image_id) == listed
    assert stranger.session.get(f"{member.url}/v2/images/{image_id}/tasks", timeout=10).status_code == 404
    assert member.session.get(f"{member.url}/v2/images/{NO_SUCH_ID}/tasks", timeout=10).status_code == 404
    image = member.show(image_id)
    assert image["stores"] == "local,slow" and "os_glance_import_task" not in image
    assert image["os_glance_importing_to_stores"] == "" and image["os_glance_failed_import"] == ""
