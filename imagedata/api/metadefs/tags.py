"""Tags of a namespace: /v2/metadefs/namespaces/{namespace}/tags[/{name}]."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from imagedata.api.common import no_body, read_json, services
from imagedata.api.metadefs.render import tag_json
from imagedata.auth.request import authenticate, current_caller
from imagedata.service.metadefs import tags
from imagedata.service.metadefs.namespaces import delete_contents

bp = Blueprint("metadef_tags", __name__, url_prefix="/v2/metadefs/namespaces/<namespace>/tags")
bp.before_request(authenticate)
# oslo's strutils.bool_from_string: the words Glance takes for "true" in X-Openstack-Append.
TRUE_WORDS = ("1", "t", "true", "on", "y", "yes")


@bp.get("")
def list_tags(namespace):
    """GET: the tags, newest first unless ``sort_key``/``sort_dir`` say otherwise; ``limit``, ``marker``."""
    rows = tags.list_tags(services(), current_caller(), namespace, tags.parse_query(request.args))
    return jsonify({"tags": [{"name": row.name} for row in rows]})


@bp.post("")
def create_tags(namespace):
    """POST {"tags": [{"name"}, ...]}: replace the tags (``X-Openstack-Append: true``: add to them)."""
    append = request.headers.get("X-Openstack-Append", "").strip().lower() in TRUE_WORDS
    rows = tags.create_tags(services(), current_caller(), namespace, read_json(), append)
    return jsonify({"tags": [{"name": row.name} for row in rows]}), 201


@bp.delete("")
def delete_tags(namespace):
    """DELETE: every tag of the namespace."""
    delete_contents(services(), current_caller(), namespace, "tags")
    return "", 204


@bp.post("/<name>")
@no_body
def create_tag(namespace, name):
    """POST (no body): one tag."""
    return jsonify(tag_json(tags.create_tag(services(), current_caller(), namespace, name))), 201


@bp.get("/<name>")
@no_body
def show_tag(namespace, name):
    """GET one tag."""
    return jsonify(tag_json(tags.show_tag(services(), current_caller(), namespace, name)))


@bp.put("/<name>")
def update_tag(namespace, name):
    """PUT {"name": new}: rename the tag."""
    return jsonify(tag_json(tags.update_tag(services(), current_caller(), namespace, name, read_json())))


@bp.delete("/<name>")
@no_body
def delete_tag(namespace, name):
    """DELETE one tag."""
    tags.delete_tag(services(), current_caller(), namespace, name)
    return "", 204
