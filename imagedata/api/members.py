"""Image members: /v2/images/{id}/members[/{member}]."""
from __future__ import annotations

from flask import Blueprint, jsonify

from imagedata.api.common import no_body, read_json, services
from imagedata.auth.request import authenticate, current_caller
from imagedata.schemas import MEMBER_OUT, MemberCreateSchema, MemberUpdateSchema, load_with
from imagedata.service import members

bp = Blueprint("members", __name__, url_prefix="/v2/images/<image_id>/members")
bp.before_request(authenticate)
CREATE, UPDATE = MemberCreateSchema(), MemberUpdateSchema()


@bp.get("")
@no_body
def list_members(image_id):
    """GET: the members the caller may see."""
    rows = members.list_members(services(), current_caller(), image_id)
    return jsonify({"members": [MEMBER_OUT.dump(row) for row in rows], "schema": "/v2/schemas/members"})


@bp.post("")
def add_member(image_id):
    """POST {"member": project}: share the image."""
    body = load_with(CREATE, read_json(), '{"member": "<project id>"}')
    return jsonify(MEMBER_OUT.dump(members.add_member(services(), current_caller(), image_id, body["member"])))


@bp.get("/<member>")
@no_body
def show_member(image_id, member):
    """GET one membership."""
    return jsonify(MEMBER_OUT.dump(members.show_member(services(), current_caller(), image_id, member)))


@bp.put("/<member>")
def update_member(image_id, member):
    """PUT {"status": accepted|rejected|pending}: the member answers."""
    body = load_with(UPDATE, read_json(), '{"status": "accepted"}')
    row = members.update_member(services(), current_caller(), image_id, member, body["status"])
    return jsonify(MEMBER_OUT.dump(row))


@bp.delete("/<member>")
@no_body
def delete_member(image_id, member):
    """DELETE: stop sharing."""
    members.delete_member(services(), current_caller(), image_id, member)
    return "", 204
