"""The tasks API and the task records, on SQLite and PostgreSQL.

The answers pinned here are Glance 33's (asked with the same requests through the peers kit,
``tests/fixtures/glance33-schema-task*.json`` are its schema documents), except for the
legacy import: see ``imagedata/service/task_requests.py``.
"""
from __future__ import annotations

import datetime
import json
import os
import uuid

import pytest

from imagedata.db import database
from imagedata.errors import Conflict
from imagedata.models import Task, utcnow
from imagedata.service import tasks

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
JSON = {"Accept": "application/json"}
PROPERTIES = {"container_format": "bare", "disk_format": "qcow2", "name": "t"}


@pytest.fixture
def admin(admin_token):
    return {"X-Auth-Token": admin_token, **JSON}


@pytest.fixture
def member(token):
    return {"X-Auth-Token": token, **JSON}


def message(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["message"]


def make_task(task_type="api_image_import", owner="ops", **kw) -> Task:
    with database.connection_context():
        return tasks.create_task(task_type, owner, {"image_id": "x"}, **kw)


@pytest.mark.parametrize("name", ["task", "tasks"])
def test_schema_documents_are_glances(client, member, name):
    with open(os.path.join(FIXTURES, f"glance33-schema-{name}.json")) as f:
        expected = json.load(f)
    response = client.get(f"/v2/schemas/{name}", headers=member)
    assert response.status_code == 200 and response.get_json() == expected


@pytest.mark.parametrize("method, path", [("GET", "/v2/tasks"), ("POST", "/v2/tasks"), ("GET", f"/v2/tasks/{uuid.uuid4()}"),
                                          ("DELETE", "/v2/tasks/x")])
def test_tasks_api_is_for_admins(client, member, method, path):
    body = {"json": {"type": "import", "input": {}}} if method == "POST" else {}
    response = client.open(path, method=method, headers=member, **body)
    assert message(response) == (403, "You are not authorized to complete tasks_api_access action.")


@pytest.mark.parametrize("body, expected", [
    ({}, "Task 'type' is required"), ([], "Task 'type' is required"), ({"type": "import"}, "Task 'input' is required"),
    ({"input": {}}, "Task 'type' is required"),
    ({"type": "bogus", "input": {}}, "Provided object does not match schema 'task': 'bogus' is not one of "
                                     "['import', 'api_image_import', 'location_import']"),
    ({"type": "import", "input": "x"}, "Provided object does not match schema 'task': 'x' is not of type 'null', "
                                       "'object'"),
    ({"type": "import", "input": {}, "extra": 1}, "Provided object does not match schema 'task': Additional "
                                                  "properties are not allowed ('extra' was unexpected)"),
    ({"type": "import", "input": {}}, "Invalid location: None"),
    ({"type": "import", "input": None}, "Invalid location: None"),
    ({"type": "import", "input": {"import_from": ""}}, "Invalid location: "),
    ({"type": "import", "input": {"import_from": "file:///etc/passwd"}},
     "File based imports are not allowed. Please use a non-local source of image data."),
    ({"type": "import", "input": {"import_from": "ftp://x/y"}},
     "The given uri is not valid. Please specify a valid uri from the following list of supported uri ['http']"),
])
def test_create_bad_body_is_400(client, admin, body, expected):
    assert message(client.post("/v2/tasks", headers=admin, json=body)) == (400, expected)


@pytest.mark.parametrize("url", ["http://127.0.0.1/x.qcow2", "http://tempest-dummy-img-file.qcow2",
                                 "https://example.invalid/cirros.img"])
def test_legacy_import_from_a_url_is_400_and_fetches_nothing(client, admin, url):
    """Glance 33 refuses at create what it may not fetch; this service fetches nothing for this task."""
    body = {"type": "import", "input": {"image_properties": PROPERTIES, "import_from_format": "qcow2",
                                        "import_from": url}}
    status, text = message(client.post("/v2/tasks", headers=admin, json=body))
    assert status == 400 and text.startswith(f"URI for legacy import task does not pass filtering: {url} (")
    assert "PUT /v2/images/{image_id}/file" in text
    assert client.get("/v2/tasks", headers=admin).get_json()["tasks"] == []


@pytest.mark.parametrize("task_type", ["api_image_import", "location_import"])
def test_posted_internal_task_is_made_then_fails(client, admin, task_type):
    body = {"type": task_type, "input": {"image_id": "abc", "import_from": "http://127.0.0.1/x"}}
    response = client.post("/v2/tasks", headers={**admin, "X-Openstack-Request-ID": "req-42"}, json=body)
    assert response.status_code == 201
    made = response.get_json()
    assert response.headers["Location"] == f"/v2/tasks/{made['id']}"
    assert list(made) == ["id", "input", "type", "status", "owner", "message", "result", "created_at", "updated_at",
                          "self", "schema", "image_id", "request_id", "user_id"]
    assert (made["status"], made["owner"], made["input"], made["image_id"], made["request_id"]) == (
        "pending", "ops", body["input"], "abc", "req-42")
    shown = client.get(f"/v2/tasks/{made['id']}", headers=admin).get_json()
    assert shown["status"] == "failure" and "not by POST /v2/tasks" in shown["message"]
    ends = datetime.datetime.strptime(shown["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(ends - utcnow() - tasks.TIME_TO_LIVE) < datetime.timedelta(seconds=5)


def test_show_unknown_is_404(client, admin):
    unknown = str(uuid.uuid4())
    assert message(client.get(f"/v2/tasks/{unknown}", headers=admin)) == (404, f"Could not find task {unknown}")
    assert message(client.get("/v2/tasks/abc", headers=admin)) == (404, "Could not find task abc")


def test_delete_is_405(client, admin):
    response = client.delete("/v2/tasks/abc", headers=admin)
    assert response.status_code == 405 and response.headers["Allow"] == "GET"


@pytest.mark.parametrize("query, expected", [
    ("status=bogus", "Invalid status value: bogus"), ("type=bogus", "Invalid type value: bogus"),
    ("type=api_image_import", "Invalid type value: api_image_import"), ("limit=-1", "limit param must be positive"),
    ("limit=x", "limit param must be an integer"), ("marker=abc", "Invalid marker format"),
    ("marker=", "Task with the given id  was not found"), ("sort_dir=x", "Invalid sort direction: x"),
    ("sort_key=bogus", "Sort key supplied was not valid."),
    (f"marker={uuid.UUID(int=7)}", f"Task with the given id {uuid.UUID(int=7)} was not found"),
])
def test_list_bad_query_is_400(client, admin, query, expected):
    assert message(client.get(f"/v2/tasks?{query}", headers=admin)) == (400, expected)


def test_list_pages_filters_and_scopes(client, admin, make_token):
    made = [make_task(owner="ops" if i % 2 else "p2", image_id=f"image-{i}") for i in range(5)]
    listed = client.get("/v2/tasks?limit=2&sort_key=image_id&sort_dir=asc", headers=admin).get_json()
    assert [t["image_id"] for t in [task_of(client, admin, t["id"]) for t in listed["tasks"]]] == ["image-0", "image-1"]
    assert listed["first"] == "/v2/tasks?limit=2&sort_key=image_id&sort_dir=asc"
    rest = client.get(listed["next"], headers=admin).get_json()
    rest2 = client.get(rest["next"], headers=admin).get_json()
    assert len(rest["tasks"]) == 2 and len(rest2["tasks"]) == 1 and "next" not in rest2
    assert set(listed["tasks"][0]) == {"id", "type", "status", "owner", "created_at", "updated_at", "self", "schema"}
    assert ids(client, admin, "owner=p2") == {made[i].id for i in (0, 2, 4)}
    assert ids(client, admin, "status=pending&foo=bar") == {task.id for task in made}
    assert ids(client, admin, "type=import") == set()
    # A project that may use the API (by policy) sees only its own tasks.
    client.application.extensions["imagedata"].policy.rules["tasks_api_access"] = \
        client.application.extensions["imagedata"].policy.rules["get_images"]
    p2 = {"X-Auth-Token": make_token("p2"), **JSON}
    assert ids(client, p2, "") == {made[i].id for i in (0, 2, 4)}
    assert client.get(f"/v2/tasks/{made[1].id}", headers=p2).status_code == 404


def task_of(client, headers, task_id):
    return client.get(f"/v2/tasks/{task_id}", headers=headers).get_json()


def ids(client, headers, query):
    return {t["id"] for t in client.get(f"/v2/tasks?{query}", headers=headers).get_json()["tasks"]}


def test_records_move_only_forward(app):
    with database.connection_context():
        task = tasks.create_task("api_image_import", "p1", {"image_id": "i"}, image_id="i", user_id="u",
                                 request_id="req-1")
        assert (task.status, task.expires_at, task.message) == ("pending", None, "")
        assert tasks.begin_task(task.id).status == "processing"
        with pytest.raises(Conflict):
            tasks.begin_task(task.id)
        assert tasks.update_task(task.id, message="Copied 15 MiB").message == "Copied 15 MiB"
        done = tasks.finish_task(task.id, "success", result={"image_id": "i"})
        assert (done.status, tasks.task_result(done), done.expires_at - done.updated_at) == (
            "success", {"image_id": "i"}, tasks.TIME_TO_LIVE)
        for move in (lambda: tasks.finish_task(task.id, "failure", message="late"),
                     lambda: tasks.update_task(task.id, message="late")):
            with pytest.raises(Conflict):
                move()
        assert [t.id for t in tasks.list_image_tasks("i")] == [task.id]


def test_expired_tasks_vanish_and_are_purged(client, admin):
    task = make_task()
    with database.connection_context():
        tasks.finish_task(task.id, "failure", message="boom")
        Task.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(Task.id == task.id).execute()
        assert tasks.list_image_tasks(task.image_id) == []
    assert client.get(f"/v2/tasks/{task.id}", headers=admin).status_code == 404
    assert client.get("/v2/tasks", headers=admin).get_json()["tasks"] == []
    with database.connection_context():
        assert Task.select().count() == 0
