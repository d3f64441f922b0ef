"""The tasks API (/v2/tasks) as Glance 33 answers it: who may call it, bodies, queries, the legacy import.

Glance: the whole API is behind the ``tasks_api_access`` rule (admins by default); a caller
who passes it sees every task when admin, else its project's. ``POST`` makes tasks of the
legacy ``import`` type, whose ``import_from`` URL Glance 33 checks before it makes the task
(400 for anything it may not fetch). This service fetches no URL for that task, so every
``import_from`` gets that 400, with what to do instead; ``api_image_import`` and
``location_import`` tasks are made and fail at once, as they do on Glance when posted here.
"""
from __future__ import annotations

import dataclasses
import uuid

from imagedata.errors import BadRequest, NotFound
from imagedata.models import Task
from imagedata.policy import Caller
from imagedata.service import Services, tasks

DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
SORT_KEYS = ("id", "type", "status", "owner", "image_id", "user_id", "request_id", "created_at", "updated_at",
             "expires_at")
# What a task body may hold besides type and input (Glance validates it against the task schema).
BODY_TEXT_KEYS = ("id", "owner", "message", "image_id", "request_id", "user_id", "created_at", "updated_at",
                  "self", "schema")
NOT_POSTABLE = {
    "api_image_import": "Tasks of type api_image_import are made by the image import API "
                        "(POST /v2/images/{image_id}/import), not by POST /v2/tasks.",
    "location_import": "Tasks of type location_import are made by the locations API "
                       "(POST /v2/images/{image_id}/locations), not by POST /v2/tasks.",
}


def check_access(svc: Services, caller: Caller) -> None:
    """403 unless the caller may use the tasks API at all."""
    svc.policy.enforce("tasks_api_access", caller)


def _owner_scope(caller: Caller) -> str | None:
    """None (every task) for admins, else the caller's project."""
    return None if caller.is_admin else (caller.project_id or "")


def _schema_error(detail: str) -> BadRequest:
    return BadRequest(f"Provided object does not match schema 'task': {detail}")


def load_task_body(body) -> tuple[str, dict | None]:
    """(type, input) of a POST /v2/tasks body, checked in Glance's order and words."""
    if not isinstance(body, dict):
        body = {}
    for key in ("type", "input"):
        if key not in body:
            raise BadRequest(f"Task '{key}' is required")
    for key, value in body.items():
        if key == "type":
            if value not in tasks.TYPES:
                raise _schema_error(f"{value!r} is not one of {list(tasks.TYPES)}")
        elif key in ("input", "result"):
            if value is not None and not isinstance(value, dict):
                raise _schema_error(f"{value!r} is not of type 'null', 'object'")
        elif key == "status":
            if value not in tasks.STATUSES:
                raise _schema_error(f"{value!r} is not one of {list(tasks.STATUSES)}")
        elif key in BODY_TEXT_KEYS or key == "expires_at":
            if not isinstance(value, str) and not (key == "expires_at" and value is None):
                raise _schema_error(f"{value!r} is not of type 'string'")
        else:
            raise _schema_error(f"Additional properties are not allowed ({key!r} was unexpected)")
    return body["type"], body["input"]


def check_import_from(location) -> None:
    """400 for the ``import_from`` of a legacy import task, in Glance 33's words for each kind."""
    if not location or not isinstance(location, str):
        raise BadRequest(f"Invalid location: {location}")
    if location.startswith(("file:///", "filesystem:///")):
        raise BadRequest("File based imports are not allowed. Please use a non-local source of image data.")
    if not location.startswith(("http://", "https://")):
        raise BadRequest("The given uri is not valid. Please specify a valid uri from the following list of "
                         "supported uri ['http']")
    raise BadRequest(f"URI for legacy import task does not pass filtering: {location} (this service fetches no "
                     "image data from URLs: create the image with POST /v2/images, then upload its data with "
                     "PUT /v2/images/{image_id}/file)")


def create_task_request(svc: Services, caller: Caller, body, request_id: str | None) -> Task:
    """POST /v2/tasks: the new task (which, of the types that may be posted here, fails at once)."""
    check_access(svc, caller)
    task_type, task_input = load_task_body(body)
    if task_type == "import":
        check_import_from((task_input or {}).get("import_from"))
    image_id = (task_input or {}).get("image_id")
    task = tasks.create_task(task_type, caller.project_id, task_input,
                             image_id=image_id if isinstance(image_id, str) else None,
                             user_id=caller.user_id, request_id=request_id)
    tasks.finish_task(task.id, "failure", message=NOT_POSTABLE[task_type])
    return task


def show_task(svc: Services, caller: Caller, task_id: str) -> Task:
    """GET /v2/tasks/{id}: 404 for a task the caller may not see."""
    check_access(svc, caller)
    task = tasks.find_task(task_id, _owner_scope(caller))
    if task is None:
        raise NotFound(f"Could not find task {task_id}")
    return task


@dataclasses.dataclass
class TaskQuery:
    """Parsed query parameters of GET /v2/tasks."""

    limit: int = DEFAULT_LIMIT
    marker: str | None = None
    sort_key: str = "created_at"
    sort_dir: str = "desc"
    filters: dict = dataclasses.field(default_factory=dict)


def parse_task_query(args) -> TaskQuery:
    """A TaskQuery from a multi-dict of query parameters; 400 in Glance's words."""
    q = TaskQuery()
    values = {name: args.getlist(name)[-1] for name in args}
    q.sort_dir = values.pop("sort_dir", "desc")
    if q.sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {q.sort_dir}")
    q.sort_key = values.pop("sort_key", "created_at")
    status, task_type = values.get("status"), values.get("type")
    if status and status not in tasks.STATUSES:
        raise BadRequest(f"Invalid status value: {status}")
    if task_type and task_type != "import":  # Glance: only the legacy type may be asked for
        raise BadRequest(f"Invalid type value: {task_type}")
    if "marker" in values:
        q.marker = values.pop("marker")
        if q.marker and not _is_uuid(q.marker):
            raise BadRequest("Invalid marker format")
    if "limit" in values:
        q.limit = _limit(values.pop("limit"))
    if q.sort_key not in SORT_KEYS:
        raise BadRequest("Sort key supplied was not valid.")
    # Glance: any other parameter naming a task column filters on it; the rest are ignored.
    q.filters = {name: value for name, value in values.items() if name in SORT_KEYS and value is not None}
    return q


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _limit(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if number < 0:
        raise BadRequest("limit param must be positive")
    return min(number, MAX_LIMIT)


def list_task_page(svc: Services, caller: Caller, q: TaskQuery) -> tuple[list[Task], str | None]:
    """GET /v2/tasks: a page of tasks and the marker of the next page (None on the last)."""
    check_access(svc, caller)
    owner = _owner_scope(caller)
    condition = Task.id.is_null(False)
    if owner is not None:
        condition &= Task.owner == owner
    for name, value in q.filters.items():
        condition &= getattr(Task, name) == value
    keys = [q.sort_key] + [key for key in ("created_at", "id") if key != q.sort_key]
    if q.marker is not None:
        marker = tasks.find_task(q.marker, owner)
        if marker is None:
            raise BadRequest(f"Task with the given id {q.marker} was not found")
        condition &= _after(keys, q.sort_dir, marker)
    order = [getattr(Task, key).asc() if q.sort_dir == "asc" else getattr(Task, key).desc() for key in keys]
    found = tasks.list_tasks(condition, order, q.limit)
    return found, (found[-1].id if found and len(found) == q.limit else None)


def _after(keys: list[str], direction: str, marker: Task):
    """Keyset condition: tasks strictly after ``marker`` in the order of ``keys`` (nulls never follow)."""
    condition = None
    for i, key in enumerate(keys):
        column = getattr(Task, key)
        step = column > getattr(marker, key) if direction == "asc" else column < getattr(marker, key)
        for earlier in keys[:i]:
            step &= getattr(Task, earlier) == getattr(marker, earlier)
        condition = step if condition is None else condition | step
    return condition
