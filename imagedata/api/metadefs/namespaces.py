"""Namespaces and resource types: /v2/metadefs/namespaces[/{namespace}], /v2/metadefs/resource_types
and /v2/metadefs/namespaces/{namespace}/resource_types[/{name}]."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, jsonify, request

from imagedata.api.common import no_body, read_json, services
from imagedata.api.metadefs.render import (NAMESPACES, association_json, namespace_json,
                                           resource_type_json)
from imagedata.auth.request import authenticate, current_caller
from imagedata.service.metadefs import listing, namespaces, resource_types

bp = Blueprint("metadef_namespaces", __name__, url_prefix="/v2/metadefs")
bp.before_request(authenticate)


@bp.get("/namespaces")
def list_namespaces():
    """GET: the visible namespaces, with their resource type associations; paged by ``next``."""
    rows, associations, next_marker = listing.list_namespaces(services(), current_caller(),
                                                              listing.parse_query(request.args))
    params = {key: value for key, value in request.args.items() if key != "marker"}
    body = {"namespaces": [namespace_json(row, associations.get(row.id, ())) for row in rows],
            "first": NAMESPACES + (f"?{urlencode(params)}" if params else ""),
            "schema": "/v2/schemas/metadefs/namespaces"}
    if next_marker is not None:
        body["next"] = f"{NAMESPACES}?{urlencode({**params, 'marker': next_marker})}"
    return jsonify(body)


@bp.post("/namespaces")
def create_namespace():
    """POST: a namespace, with any objects, properties, tags and associations it carries."""
    detail = namespaces.create_namespace(services(), current_caller(), read_json())
    response = jsonify(namespace_json(detail.namespace, detail=detail))
    response.status_code = 201
    response.headers["Location"] = request.host_url.rstrip("/") + f"{NAMESPACES}/{detail.namespace.namespace}"
    return response


@bp.get("/namespaces/<namespace>")
@no_body
def show_namespace(namespace):
    """GET: the namespace and what it holds (``?resource_type=T`` prefixes property names for T)."""
    detail = namespaces.show_namespace(services(), current_caller(), namespace, request.args.get("resource_type"))
    return jsonify(namespace_json(detail.namespace, detail=detail))


@bp.put("/namespaces/<namespace>")
def update_namespace(namespace):
    """PUT: replace the namespace's attributes."""
    return jsonify(namespace_json(namespaces.update_namespace(services(), current_caller(), namespace,
                                                              read_json())))


@bp.delete("/namespaces/<namespace>")
@no_body
def delete_namespace(namespace):
    """DELETE: the namespace and everything it holds."""
    namespaces.delete_namespace(services(), current_caller(), namespace)
    return "", 204


@bp.get("/resource_types")
@no_body
def list_resource_types():
    """GET: every resource type namespaces are (or were) associated with."""
    rows = resource_types.list_resource_types(services(), current_caller())
    return jsonify({"resource_types": [resource_type_json(row) for row in rows]})


@bp.get("/namespaces/<namespace>/resource_types")
@no_body
def list_associations(namespace):
    """GET: the namespace's resource type associations."""
    rows = resource_types.list_associations(services(), current_caller(), namespace)
    return jsonify({"resource_type_associations": [association_json(row) for row in rows]})


@bp.post("/namespaces/<namespace>/resource_types")
def create_association(namespace):
    """POST {"name", "prefix", "properties_target"}: apply the namespace to a resource type."""
    row = resource_types.create_association(services(), current_caller(), namespace, read_json())
    return jsonify(association_json(row)), 201


@bp.delete("/namespaces/<namespace>/resource_types/<name>")
@no_body
def delete_association(namespace, name):
    """DELETE: stop applying the namespace to that resource type."""
    resource_types.delete_association(services(), current_caller(), namespace, name)
    return "", 204
