"""Interoperable import: PUT /stage, POST /import, GET /tasks of an image, DELETE a store's copy."""
from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from imagedata.api.common import no_body, read_json, services
from imagedata.api.data import receive_data
from imagedata.api.tasks import task_view
from imagedata.auth.request import authenticate, current_caller
from imagedata.errors import NotFound
from imagedata.service.imports import copies, requests

bp = Blueprint("imports", __name__, url_prefix="/v2")
bp.before_request(authenticate)


@bp.put("/images/<image_id>/stage")
def stage_data(image_id):
    """PUT /v2/images/{id}/stage: the body streamed into the staging store; 204, image `uploading`."""
    if "glance-direct" not in services().settings.import_methods:
        raise NotFound("The glance-direct import method is not offered here, so nothing can be staged: upload "
                       f"with PUT /v2/images/{image_id}/file instead (an operator offers it by adding "
                       "glance-direct to IMAGEDATA_IMPORT_METHODS).")
    return receive_data(image_id, stage=True)


@bp.post("/images/<image_id>/import")
def import_image(image_id):
    """POST /v2/images/{id}/import: start an import task; 202 with no body."""
    req = requests.ImportRequest(image_id, read_json(), request.headers.get("X-Image-Meta-Store"),
                                 g.get("request_id"))
    requests.request_import(services(), current_caller(), req)
    return Response(status=202)


@bp.get("/images/<image_id>/tasks")
@no_body
def image_tasks(image_id):
    """GET /v2/images/{id}/tasks: the image's import tasks, newest first."""
    found = requests.image_tasks(services(), current_caller(), image_id)
    return jsonify({"tasks": [task_view(task) for task in found]})


@bp.delete("/stores/<store_id>/<image_id>")
@no_body
def delete_copy(store_id, image_id):
    """DELETE /v2/stores/{store_id}/{image_id}: remove the image's copy in one store; 204."""
    copies.delete_copy(services(), current_caller(), store_id, image_id)
    return Response(status=204)
