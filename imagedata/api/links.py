"""Signed download links: POST /v2/images/{id}/file/links, GET .../file/links/{link} (no token)."""
from __future__ import annotations

import datetime

from flask import Blueprint, current_app, jsonify, request

from imagedata.api.common import has_body, no_body, read_json, services
from imagedata.api.data import download_request, download_response
from imagedata.auth.request import authenticate, current_caller
from imagedata.errors import BadRequest
from imagedata.service import download, links
from imagedata.service.tokens import find_token

bp = Blueprint("links", __name__, url_prefix="/v2/images/<image_id>/file/links")
# keystonemiddleware's description of the token it validated (expiry, audit ids).
KEYSTONE_TOKEN_INFO = "keystone.token_info"


@bp.post("")
def create_link(image_id):
    """Body ``{"expires_in": seconds}`` (optional): 201 with the link's URL and expiry."""
    authenticate()
    body = read_json() if has_body() else {}
    if not isinstance(body, dict) or set(body) - {"expires_in"}:
        raise BadRequest('The body may hold only "expires_in" (seconds).')
    link = links.create_link(services(), _issuer(), image_id, body.get("expires_in"))
    base_url = current_app.config["IMAGEDATA"].public_endpoint or request.host_url.rstrip("/")
    response = jsonify({"url": f"{base_url}{link.path}", "image_id": image_id.lower(),
                        "expires_at": f"{link.expires_at:%Y-%m-%dT%H:%M:%SZ}", "expires_in": link.expires_in})
    response.status_code = 201
    response.headers["Location"] = f"{base_url}{link.path}"
    return response


@bp.get("/<link>")
@no_body
def download_by_link(image_id, link):
    """GET (and HEAD) without a token: the same answer as GET /file, once the link checks out."""
    caller = links.resolve_link(services(), image_id, link)
    plan = download.prepare_download(services(), caller, download_request(image_id))
    return download_response(plan)


def _issuer() -> links.Issuer:
    """The caller, and the token they used when the service can check it later (or its expiry)."""
    caller = current_caller()
    mode = services().settings.auth
    if mode == "token":
        row = find_token(request.headers.get("X-Auth-Token"))
        return links.Issuer(caller, row.token_id, row.expires_at)
    if mode == "keystone":
        return links.Issuer(caller, expires_at=_keystone_expiry())
    return links.Issuer(caller)


def _keystone_expiry() -> datetime.datetime | None:
    """When the Keystone token of this request expires (naive UTC), as auth_token found it."""
    info = request.environ.get(KEYSTONE_TOKEN_INFO) or {}
    value = (info.get("token") or {}).get("expires_at") or (info.get("access") or {}).get("token", {}).get("expires")
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment.replace(microsecond=0)
