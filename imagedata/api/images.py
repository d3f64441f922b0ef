"""Image records: /v2/images and /v2/images/{id}, tags and actions."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request

from imagedata.api.common import no_body, read_json, services
from imagedata.auth.request import authenticate, current_caller
from imagedata.errors import unsupported_media_type
from imagedata.schemas import IMAGE_OUT, load_image_body
from imagedata.service import images, listing
from imagedata.service.patch import MEDIA_TYPES

bp = Blueprint("images", __name__, url_prefix="/v2/images")
bp.before_request(authenticate)


def _store_ids_header() -> str:
    return ",".join(store.store_id for store in services().stores)


@bp.post("")
def create_image():
    """POST /v2/images: 201 with the new queued image."""
    base, extras = load_image_body(read_json())
    image = images.create_image(services(), current_caller(), base, extras)
    response = jsonify(IMAGE_OUT.dump(image))
    response.status_code = 201
    base_url = current_app.config["IMAGEDATA"].public_endpoint or request.host_url.rstrip("/")
    response.headers["Location"] = f"{base_url}/v2/images/{image.id}"
    response.headers["OpenStack-image-store-ids"] = _store_ids_header()
    if services().settings.import_methods:  # openstacksdk decides from this header whether import exists
        response.headers["OpenStack-image-import-methods"] = ",".join(services().settings.import_methods)
    return response


@bp.get("")
@no_body
def list_images():
    """GET /v2/images: one page, with `first` and (when the page is full) `next`."""
    query = listing.parse_query(request.args)
    found, next_marker = listing.list_images(services(), current_caller(), query)
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "marker"]
    first = "/v2/images" + (f"?{urlencode(params)}" if params else "")
    body = {"images": [IMAGE_OUT.dump(image) for image in found], "first": first, "schema": "/v2/schemas/images"}
    if next_marker:
        body["next"] = f"/v2/images?{urlencode(params + [('marker', next_marker)])}"
    return jsonify(body)


@bp.get("/<image_id>")
@no_body
def show_image(image_id):
    """GET /v2/images/{id}."""
    return jsonify(IMAGE_OUT.dump(images.show_image(services(), current_caller(), image_id)))


@bp.patch("/<image_id>")
def update_image(image_id):
    """PATCH /v2/images/{id} with a JSON-patch document (v2.1 or the v2.0 draft)."""
    media_type = request.mimetype
    if media_type not in MEDIA_TYPES:
        raise unsupported_media_type(request.content_type, "a JSON patch", MEDIA_TYPES,
                                     headers={"Accept-Patch": ", ".join(MEDIA_TYPES)})
    image = images.update_image(services(), current_caller(), image_id, media_type, read_json())
    return jsonify(IMAGE_OUT.dump(image))


@bp.delete("/<image_id>")
@no_body
def delete_image(image_id):
    """DELETE /v2/images/{id}: 204; data removed, id never reused."""
    images.delete_image(services(), current_caller(), image_id)
    return "", 204


@bp.post("/<image_id>/actions/deactivate")
@no_body
def deactivate(image_id):
    """Make an active image's data unavailable to non-admins."""
    images.set_active(services(), current_caller(), image_id, active=False)
    return "", 204


@bp.post("/<image_id>/actions/reactivate")
@no_body
def reactivate(image_id):
    """Make a deactivated image downloadable again."""
    images.set_active(services(), current_caller(), image_id, active=True)
    return "", 204


@bp.put("/<image_id>/tags/<tag>")
def add_tag(image_id, tag):
    """Add one tag."""
    images.add_tag(services(), current_caller(), image_id, tag)
    return "", 204


@bp.delete("/<image_id>/tags/<tag>")
def delete_tag(image_id, tag):
    """Remove one tag."""
    images.delete_tag(services(), current_caller(), image_id, tag)
    return "", 204
