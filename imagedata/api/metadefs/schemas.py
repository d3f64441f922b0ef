"""The schema documents of metadata definitions: GET /v2/schemas/metadefs/{name}."""
from __future__ import annotations

import functools

from flask import Blueprint, jsonify

from imagedata.api.common import no_body
from imagedata.auth.request import authenticate
from imagedata.service.metadefs.documents import schema_documents

bp = Blueprint("metadef_schemas", __name__, url_prefix="/v2/schemas/metadefs")
bp.before_request(authenticate)

NAMES = ("namespace", "namespaces", "object", "objects", "property", "properties", "tag", "tags",
         "resource_type", "resource_types")


@functools.cache
def _documents() -> dict:
    return schema_documents()


@bp.get(f"/<any({', '.join(NAMES)}):name>")
@no_body
def show_schema(name):
    """GET one document (namespace, namespaces, object, ..., resource_type, resource_types)."""
    return jsonify(_documents()[name])
