"""Task records: the one owner of the ``task`` table's rows and of their status changes.

A task is ``pending`` when made, ``processing`` once work starts, and ends ``success`` (with a
result) or ``failure`` (with a message); ending sets ``expires_at`` 48 hours later (Glance's
``task_time_to_live``), after which the task is no longer shown and is purged. Every status
change is a compare-and-set from the statuses it may leave, so two workers cannot both end a task.

The image import API (``GET /v2/images/{id}/tasks``, type ``api_image_import``) and the tasks
API (``/v2/tasks``) both use these functions.
"""
from __future__ import annotations

import datetime
import json
import uuid

from peewee import Expression

from imagedata.errors import Conflict, NotFound
from imagedata.models import Task, utcnow
from imagedata.service.webfetch.redact import redact_url

TYPES = ("import", "api_image_import", "location_import")
STATUSES = ("pending", "processing", "success", "failure")
TIME_TO_LIVE = datetime.timedelta(hours=48)
# Which statuses a task may move to from each status (Glance's transitions).
TRANSITIONS = {"pending": ("processing", "failure"), "processing": ("success", "failure"), "success": (),
               "failure": ()}


def create_task(task_type: str, owner: str | None, task_input: dict | None, *, image_id: str | None = None,
                user_id: str | None = None, request_id: str | None = None) -> Task:
    """A new ``pending`` task."""
    if task_type not in TYPES:
        raise ValueError(f"unknown task type {task_type!r}")
    now = utcnow()
    task_id = str(uuid.uuid4())
    Task.insert(id=task_id, type=task_type, status="pending", owner=owner, image_id=image_id, user_id=user_id,
                request_id=request_id, input=_dump(task_input), result=None, message="", created_at=now,
                updated_at=now).execute()
    return Task.get_by_id(task_id)


def begin_task(task_id: str) -> Task:
    """pending -> processing; Conflict if the task is no longer pending."""
    return _move(task_id, "processing")


def update_task(task_id: str, message: str | None = None, result: dict | None = None) -> Task:
    """Record progress (a message such as "Copied 15 MiB", a partial result) of a task still running."""
    changes = {Task.updated_at: utcnow()}
    if message is not None:
        changes[Task.message] = message
    if result is not None:
        changes[Task.result] = _dump(result)
    rows = Task.update(changes).where((Task.id == task_id) & Task.status.in_(("pending", "processing"))).execute()
    if rows != 1:
        raise Conflict(f"Task {task_id} has ended or does not exist.")
    return Task.get_by_id(task_id)


def finish_task(task_id: str, status: str, *, result: dict | None = None, message: str | None = "") -> Task:
    """End a task: ``success`` (with its result) or ``failure`` (with a message; None keeps the
    last progress message); it expires 48 h later."""
    if status not in ("success", "failure"):
        raise ValueError(f"a task ends in success or failure, not {status!r}")
    changes = {} if message is None else {"message": message}
    return _move(task_id, status, result=_dump(result), expires_at=utcnow() + TIME_TO_LIVE, **changes)


def _move(task_id: str, status: str, **changes) -> Task:
    sources = [source for source, targets in TRANSITIONS.items() if status in targets]
    rows = (Task.update(status=status, updated_at=utcnow(), **changes)
            .where((Task.id == task_id) & Task.status.in_(sources)).execute())
    if rows != 1:
        current = Task.get_or_none(Task.id == task_id)
        if current is None:
            raise NotFound(f"Could not find task {task_id}")
        raise Conflict(f"Task {task_id} cannot go from {current.status} to {status}.")
    return Task.get_by_id(task_id)


def live() -> Expression:
    """The tasks still shown: not ended, or ended less than 48 hours ago."""
    return Task.expires_at.is_null() | (Task.expires_at > utcnow())


def find_task(task_id: str, owner: str | None = None) -> Task | None:
    """The live task with this id (of ``owner`` unless None), or None."""
    condition = (Task.id == task_id) & live()
    if owner is not None:
        condition &= Task.owner == owner
    return Task.get_or_none(condition)


def list_tasks(condition: Expression, order: list, limit: int) -> list[Task]:
    """Live tasks matching ``condition``, in ``order``, at most ``limit``; purges expired ones first."""
    purge_expired_tasks()
    return list(Task.select().where(live() & condition).order_by(*order).limit(limit))


def list_image_tasks(image_id: str) -> list[Task]:
    """The live tasks of an image, newest first (``GET /v2/images/{id}/tasks``)."""
    return list(Task.select().where((Task.image_id == image_id) & live())
                .order_by(Task.created_at.desc(), Task.id.desc()))


def purge_expired_tasks() -> int:
    """Delete the tasks whose time to live has passed; returns how many."""
    return Task.delete().where(Task.expires_at <= utcnow()).execute()


def task_input(task: Task) -> dict | None:
    """The task's input, decoded."""
    return json.loads(task.input) if task.input is not None else None


def shown_input(task: Task) -> dict | None:
    """The task's input as the API shows it: every URL in it redacted (credentials and secret
    query values hidden), while the record keeps what the task needs to run again."""
    return _redacted(task_input(task))


def _redacted(value):
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def task_result(task: Task) -> dict | None:
    """The task's result, decoded."""
    return json.loads(task.result) if task.result is not None else None


def _dump(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)
