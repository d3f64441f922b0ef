"""This host's image cache: Glance's cache API (Image API 2.14, clean and prune from 2.18)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from imagedata.api.common import no_body, services
from imagedata.auth.request import authenticate, current_caller
from imagedata.service.cache import manage

bp = Blueprint("cache", __name__, url_prefix="/v2/cache")
bp.before_request(authenticate)


@bp.get("")
@no_body
def cache_state():
    """GET: the images cached on this host and those queued for it."""
    return jsonify(manage.cache_state(services(), current_caller()))


@bp.delete("")
@no_body
def clear_cache():
    """DELETE: drop every copy, the queue or both (x-image-cache-clear-target)."""
    manage.clear(services(), current_caller(), request.headers.get("x-image-cache-clear-target"))
    return "", 204


@bp.put("/<image_id>")
def queue_image(image_id):
    """PUT: fetch the image into this host's cache in the background (202)."""
    manage.queue_image(services(), current_caller(), image_id)
    return "", 202


@bp.delete("/<image_id>")
@no_body
def remove_image(image_id):
    """DELETE: drop the image's copy and queue entry from this host's cache (204)."""
    manage.remove_image(services(), current_caller(), image_id)
    return "", 204


@bp.post("/clean")
def clean_cache():
    """POST: remove what dead fills left (200, no body)."""
    manage.clean(services(), current_caller())
    return "", 200


@bp.post("/prune")
def prune_cache():
    """POST: evict until the cache fits its limit; what was pruned."""
    return jsonify(manage.prune(services(), current_caller()))


@bp.get("/nodes/<image_id>")
@no_body
def cached_nodes(image_id):
    """GET: Glance's centralized cache only (409 here, as Glance's per-host driver answers)."""
    return jsonify(manage.cached_nodes(services(), current_caller(), image_id))
