"""POST /v2/images/{id}/import: Glance's request rules, then a task that runs in the background.

The checks come in Glance's order: the body (method, stores), the image (visible, allowed,
in the status the method needs, formats set), the stores, the URL. The import then holds
the image for its task's attempt (409 while another import holds it), and a thread of
this process runs it (``runner``). The answer is 202 with nothing to read: clients poll the
image, its ``os_glance_*`` properties and GET /v2/images/{id}/tasks.
"""
from __future__ import annotations

import dataclasses
import logging

from imagedata.errors import BadRequest, Conflict, ImageDataError
from imagedata.models import Task
from imagedata.policy import Caller
from imagedata.service import Services, lifecycle, locations, tasks
from imagedata.service.images import get_visible_image
from imagedata.service.imports.runner import ImportJob, start
from imagedata.service.webfetch.policy import FetchPolicy
from imagedata.storable import printable

log = logging.getLogger(__name__)

NEEDED_STATUS = {"glance-direct": "uploading", "web-download": "queued", "copy-image": "active"}


@dataclasses.dataclass(frozen=True)
class ImportRequest:
    """What the API layer read from the request."""

    image_id: str
    body: object
    store_header: str | None = None  # X-Image-Meta-Store
    request_id: str | None = None


def parse_method(svc: Services, body) -> tuple[str, str | None]:
    """(method name, uri) from the body; 400 for a body or a method that is not right."""
    if not isinstance(body, dict):
        raise BadRequest("The import request body must be a JSON object, e.g. "
                         '{"method": {"name": "glance-direct"}}.')
    method = body.get("method")
    name = method.get("name") if isinstance(method, dict) else None
    if not isinstance(name, str) or not name:
        raise BadRequest('Import method name is missing: send {"method": {"name": "<method>"}}.')
    if name not in svc.settings.import_methods:
        offered = ", ".join(svc.settings.import_methods) or "none"
        raise BadRequest(f"Import method {printable(name)!r} is not offered here (offered: {offered}; an "
                         "operator chooses them with IMAGEDATA_IMPORT_METHODS).")
    uri = method.get("uri")
    if name == "web-download":
        if not isinstance(uri, str) or not uri:
            raise BadRequest("web-download needs the URI of the image data: "
                             '{"method": {"name": "web-download", "uri": "https://..."}}.')
        return name, uri
    return name, None


def parse_stores(svc: Services, body: dict, header: str | None) -> tuple[list[str] | None, bool, bool]:
    """(stores asked for or None, all_stores, all_stores_must_succeed), with Glance's 400s."""
    stores, all_stores = body.get("stores"), body.get("all_stores", False)
    must = body.get("all_stores_must_succeed", True)
    if not isinstance(all_stores, bool) or not isinstance(must, bool):
        raise BadRequest("all_stores and all_stores_must_succeed must be true or false.")
    if stores is not None and (not isinstance(stores, list) or not all(isinstance(s, str) for s in stores)):
        raise BadRequest("stores must be a list of store identifiers.")
    if all_stores and stores:
        raise BadRequest("all_stores and stores cannot both be given.")
    if header is not None and (all_stores or stores):
        raise BadRequest("X-Image-Meta-Store cannot be combined with stores or all_stores in the body.")
    if header is not None:
        stores = [part.strip() for part in header.split(",") if part.strip()]
    return stores, all_stores, must


def target_stores(svc: Services, method: str, stores: list[str] | None, all_stores: bool,
                  holding: list[str]) -> list[str]:
    """The stores to copy into: named ones (409 if unknown; 400 for a store that already holds
    the image), all of them (less those that hold it), or the default store."""
    if all_stores:
        return [store.store_id for store in svc.stores if store.store_id not in holding]
    if not stores:
        if method == "copy-image":
            raise BadRequest("copy-image needs the stores to copy into (stores or all_stores).")
        return [svc.stores.default_id]
    for store_id in stores:
        if svc.stores.named(store_id) is None:
            raise Conflict(f"{svc.stores.not_configured(store_id)}: name those in stores or X-Image-Meta-Store, "
                           "or send all_stores: true.")
        if store_id in holding:
            raise BadRequest(f"Image is already present in store {store_id!r}.")
    return list(dict.fromkeys(stores))


def wrong_status(image, method: str) -> Conflict:
    """409 for an image that is not in the status ``method`` needs, saying what to do instead."""
    if image.status == "importing":
        hint = f"an import runs; its task (GET /v2/images/{image.id}/tasks) says when it ends"
    elif method == "copy-image":
        hint = "copy-image copies the data of an active image: upload or import its data first"
    elif image.status in ("active", "deactivated"):
        hint = "the image has data already; copy-image copies it into more stores"
    elif method == "glance-direct":
        hint = f"stage the data first with PUT /v2/images/{image.id}/stage"
    else:
        hint = "web-download fills an image that has no data yet: create a new image for it"
    return Conflict(f"Image status {image.status!r} does not allow {method}: it needs an image in status "
                    f"{NEEDED_STATUS[method]!r}; {hint}.")


def request_import(svc: Services, caller: Caller, req: ImportRequest) -> Task | None:
    """Check an import request and start it; returns its task (None when nothing is to do)."""
    method, uri = parse_method(svc, req.body)
    stores, all_stores, must = parse_stores(svc, req.body, req.store_header)
    rule = "copy_image" if method == "copy-image" else "import_image"
    image = get_visible_image(svc, caller, req.image_id, rule)
    if image.status != NEEDED_STATUS[method]:
        raise wrong_status(image, method)
    if method != "copy-image" and (image.disk_format is None or image.container_format is None):
        raise Conflict("The image's disk_format and container_format must be set before it is imported: set "
                       f"them with PATCH /v2/images/{image.id}.")
    holding = [copy.store for copy in locations.copies_of(image.id) if copy.status == "active"]
    targets = target_stores(svc, method, stores, all_stores, holding)
    if not targets:
        log.info("import of image %s: every store holds it already", image.id)
        return None
    if uri is not None:
        FetchPolicy.from_settings(svc.settings).check(uri)  # 400 naming the rule, never fetching
    job_input = {"image_id": image.id, "import_req": req.body, "backend": targets}
    task = tasks.create_task("api_image_import", image.owner, job_input, image_id=image.id,
                             user_id=caller.user_id, request_id=req.request_id)
    job = ImportJob(task.id, image.id, method, tuple(targets), must, uri)
    try:
        att = lifecycle.begin_import(svc, image, method, task.id, targets)
    except ImageDataError as exc:
        tasks.finish_task(task.id, "failure", message=exc.message)
        raise
    start(svc, job, att)
    return tasks.find_task(task.id)


def job_of(task: Task) -> ImportJob:
    """The job a task records (to run it again after a takeover)."""
    recorded = tasks.task_input(task) or {}
    body = recorded.get("import_req") or {}
    method = (body.get("method") or {}) if isinstance(body, dict) else {}
    must = body.get("all_stores_must_succeed", True) if isinstance(body, dict) else True
    return ImportJob(task.id, task.image_id, method.get("name", ""), tuple(recorded.get("backend") or ()),
                     must if isinstance(must, bool) else True, method.get("uri"))


def image_tasks(svc: Services, caller: Caller, image_id: str) -> list[Task]:
    """GET /v2/images/{id}/tasks: the image's import tasks for its owner (every one, an admin's
    copy-image too) and admins; other projects that see the image get none."""
    image = get_visible_image(svc, caller, image_id)
    if not caller.is_admin and caller.project_id != image.owner:
        return []
    return tasks.list_image_tasks(image.id)

