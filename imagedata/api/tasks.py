"""The tasks API: POST/GET /v2/tasks, GET /v2/tasks/{id}, and the task documents Glance shows."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, g, jsonify, request

from imagedata.api.common import no_body, read_json, services
from imagedata.auth.request import authenticate, current_caller
from imagedata.errors import MethodNotAllowed
from imagedata.models import Task
from imagedata.schemas import UUID_PATTERN, Attribute, format_time
from imagedata.service import task_requests, tasks

bp = Blueprint("tasks", __name__, url_prefix="/v2/tasks")
bp.before_request(authenticate)

# The task as Glance's schema describes it; `input`, `result` and `message` are left out of list items.
TASK = (
    Attribute("id", "string", "An identifier for the task", pattern=UUID_PATTERN),
    Attribute("type", "string", "The type of task represented by this content", enum=tasks.TYPES),
    Attribute("status", "string", "The current status of this task", enum=tasks.STATUSES),
    Attribute("input", "object", "The parameters required by task, JSON blob", nullable=True),
    Attribute("result", "object", "The result of current task, JSON blob", nullable=True),
    Attribute("owner", "string", "An identifier for the owner of this task"),
    Attribute("message", "string", "Human-readable informative message only included when appropriate "
                                   "(usually on failure)"),
    Attribute("image_id", "string", "Image associated with the task"),
    Attribute("request_id", "string", "Human-readable informative request-id"),
    Attribute("user_id", "string", "User associated with the task"),
    Attribute("expires_at", "string", "Datetime when this resource would be subject to removal", nullable=True),
    Attribute("created_at", "string", "Datetime when this resource was created"),
    Attribute("updated_at", "string", "Datetime when this resource was updated"),
    Attribute("self", "string", "", access="read-only"),
    Attribute("schema", "string", "", access="read-only"),
)
DETAIL_ONLY = ("input", "result", "message")


def task_stub(task: Task) -> dict:
    """A task as GET /v2/tasks lists it."""
    view = {"id": task.id, "type": task.type, "status": task.status, "owner": task.owner,
            "created_at": format_time(task.created_at), "updated_at": format_time(task.updated_at),
            "self": f"/v2/tasks/{task.id}", "schema": "/v2/schemas/task"}
    if task.expires_at:
        view["expires_at"] = format_time(task.expires_at)
    return view


def task_view(task: Task) -> dict:
    """A task as GET /v2/tasks/{id} shows it (Glance's key order; optional keys only when set)."""
    view = {"id": task.id, "input": tasks.shown_input(task), "type": task.type, "status": task.status,
            "owner": task.owner, "message": task.message, "result": tasks.task_result(task),
            "created_at": format_time(task.created_at), "updated_at": format_time(task.updated_at),
            "self": f"/v2/tasks/{task.id}", "schema": "/v2/schemas/task"}
    for key in ("image_id", "request_id", "user_id"):
        if getattr(task, key):
            view[key] = getattr(task, key)
    if task.expires_at:
        view["expires_at"] = format_time(task.expires_at)
    return view


@bp.post("")
def create_task():
    """POST /v2/tasks: 201 with the new task and a Location header."""
    task = task_requests.create_task_request(services(), current_caller(), read_json(), g.get("request_id"))
    response = jsonify(task_view(task))
    response.status_code = 201
    response.headers["Location"] = f"/v2/tasks/{task.id}"
    return response


@bp.get("")
@no_body
def list_tasks():
    """GET /v2/tasks: one page of tasks, with `first` and (when the page is full) `next`."""
    query = task_requests.parse_task_query(request.args)
    found, next_marker = task_requests.list_task_page(services(), current_caller(), query)
    params = [(k, v) for k, v in request.args.items() if k != "marker"]
    body = {"tasks": [task_stub(task) for task in found],
            "first": "/v2/tasks" + (f"?{urlencode(params)}" if params else ""), "schema": "/v2/schemas/tasks"}
    if next_marker:
        body["next"] = f"/v2/tasks?{urlencode(params + [('marker', next_marker)])}"
    return jsonify(body)


@bp.get("/<task_id>")
@no_body
def show_task(task_id):
    """GET /v2/tasks/{id}."""
    return jsonify(task_view(task_requests.show_task(services(), current_caller(), task_id)))


@bp.delete("/<task_id>")
def delete_task(task_id):
    """Glance: tasks are never deleted by request (405), only once they expire."""
    task_requests.check_access(services(), current_caller())
    raise MethodNotAllowed("This operation is currently not permitted on Glance Tasks. They are auto deleted "
                           "after reaching the time based on their expires_at property.", headers={"Allow": "GET"})
