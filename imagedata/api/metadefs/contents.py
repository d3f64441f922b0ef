"""Objects and properties of a namespace: /v2/metadefs/namespaces/{namespace}/objects[/{name}]
and .../properties[/{name}]."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from imagedata.api.common import no_body, read_json, services
from imagedata.api.metadefs.render import object_json, property_json
from imagedata.auth.request import authenticate, current_caller
from imagedata.service.metadefs import objects, properties
from imagedata.service.metadefs.namespaces import delete_contents

bp = Blueprint("metadef_contents", __name__, url_prefix="/v2/metadefs/namespaces/<namespace>")
bp.before_request(authenticate)


@bp.get("/objects")
def list_objects(namespace):
    """GET: every object of the namespace."""
    objects.check_list_query(request.args)
    rows = objects.list_objects(services(), current_caller(), namespace)
    # Glance: this one schema link has no leading slash.
    return jsonify({"objects": [object_json(namespace, row) for row in rows],
                    "schema": "v2/schemas/metadefs/objects"})


@bp.post("/objects")
def create_object(namespace):
    """POST {"name", "description", "required", "properties"}."""
    return jsonify(object_json(namespace, objects.create_object(services(), current_caller(), namespace,
                                                                read_json()))), 201


@bp.get("/objects/<name>")
@no_body
def show_object(namespace, name):
    """GET one object."""
    return jsonify(object_json(namespace, objects.show_object(services(), current_caller(), namespace, name)))


@bp.put("/objects/<name>")
def update_object(namespace, name):
    """PUT: replace the object (it may be renamed)."""
    row = objects.update_object(services(), current_caller(), namespace, name, read_json())
    return jsonify(object_json(namespace, row))


@bp.delete("/objects/<name>")
@no_body
def delete_object(namespace, name):
    """DELETE one object."""
    objects.delete_object(services(), current_caller(), namespace, name)
    return "", 204


@bp.delete("/objects")
def delete_objects(namespace):
    """DELETE: every object of the namespace."""
    delete_contents(services(), current_caller(), namespace, "objects")
    return "", 204


@bp.get("/properties")
@no_body
def list_properties(namespace):
    """GET: the property definitions, keyed by name."""
    rows = properties.list_properties(services(), current_caller(), namespace)
    return jsonify({"properties": {row.name: property_json(row) for row in rows}})


@bp.post("/properties")
def create_property(namespace):
    """POST {"name", "title", "type", ...}: a property definition."""
    row = properties.create_property(services(), current_caller(), namespace, read_json())
    return jsonify(property_json(row)), 201


@bp.get("/properties/<name>")
def show_property(namespace, name):
    """GET one definition (``?resource_type=T``: ``name`` carries T's prefix)."""
    row = properties.show_property(services(), current_caller(), namespace, name,
                                   request.args.get("resource_type") or None)
    return jsonify(property_json(row))


@bp.put("/properties/<name>")
def update_property(namespace, name):
    """PUT: replace the definition (it may be renamed)."""
    row = properties.update_property(services(), current_caller(), namespace, name, read_json())
    return jsonify(property_json(row))


@bp.delete("/properties/<name>")
def delete_property(namespace, name):
    """DELETE one definition."""
    properties.delete_property(services(), current_caller(), namespace, name)
    return "", 204


@bp.delete("/properties")
def delete_properties(namespace):
    """DELETE: every property definition of the namespace."""
    delete_contents(services(), current_caller(), namespace, "properties")
    return "", 204
