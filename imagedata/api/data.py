"""Image data: PUT and GET /v2/images/{id}/file."""
from __future__ import annotations

import re

from flask import Blueprint, Response, request
from werkzeug.wsgi import ClosingIterator, wrap_file

from imagedata.api.common import no_body, services
from imagedata.auth.request import authenticate, current_caller
from imagedata.errors import BadRequest, LengthRequired, NotImplementedByServer, unsupported_media_type
from imagedata.server.body import body_source
from imagedata.server.observe import watch_upload
from imagedata.service import download, upload
from imagedata.service.detected import HEADER as DETECTED_HEADER, detected_format_of

OCTET_STREAM = "application/octet-stream"

bp = Blueprint("data", __name__, url_prefix="/v2/images")
bp.before_request(authenticate)

SIZE_RE = re.compile(r"^\s*\d{1,30}\s*$")
SEND_BUFFER = 1 << 20


def _image_size_header() -> int | None:
    value = request.headers.get("x-openstack-image-size")
    if value is None:
        return None
    if not SIZE_RE.match(value):
        raise BadRequest("Invalid or missing image size in request headers.")
    return int(value)


def _framing() -> int | None:
    """The Content-Length, or None for a chunked body the server terminates."""
    coding = request.headers.get("Transfer-Encoding")
    if coding is not None and coding.strip().lower() != "chunked":
        raise NotImplementedByServer(f"Transfer-Encoding {coding[:40]!r} is not supported; send the image "
                                     "data as it is, with Content-Length or chunked.")
    chunked = coding is not None
    length = request.headers.get("Content-Length")
    if chunked and length is not None:
        raise BadRequest("Content-Length and Transfer-Encoding: chunked must not be combined.")
    if chunked:
        if not request.environ.get("wsgi.input_terminated"):
            raise LengthRequired("This server cannot read chunked uploads; send a Content-Length.")
        return None
    if length is None:
        return 0  # no body at all: a zero-byte upload, as Glance treats it
    if not length.isdigit():
        raise BadRequest("Invalid Content-Length.")
    return int(length)


@bp.put("/<image_id>/file")
def upload_data(image_id):
    """PUT /v2/images/{id}/file: stream the body into a store; 204 when the image is active."""
    return receive_data(image_id, stage=False)


def receive_data(image_id: str, stage: bool) -> Response:
    """PUT /file, or PUT /stage (glance-direct): the body streamed into a store; 204."""
    if request.mimetype != OCTET_STREAM:
        raise unsupported_media_type(request.content_type, "image data", (OCTET_STREAM,))
    image_size = _image_size_header()
    content_length = _framing()
    req = upload.UploadRequest(image_id=image_id, stream=body_source(request.environ, content_length),
                               content_length=content_length, image_size=image_size,
                               store_id=request.headers.get("X-Image-Meta-Store"),
                               content_range=request.headers.get("Content-Range"),
                               content_md5=request.headers.get("Content-MD5"),
                               repr_digest=request.headers.get("Repr-Digest"))
    with watch_upload(request.environ, services().settings.upload_idle_timeout) as watched:
        image = upload.upload_image_data(services(), current_caller(), req, stage=stage)
        watched.stored(image)
    response = Response(status=204)
    found = None if stage else detected_format_of(image.id)
    if found:
        response.headers[DETECTED_HEADER] = found
    return response


@bp.get("/<image_id>/file")
@no_body
def download_data(image_id):
    """GET (and HEAD) /v2/images/{id}/file: 200, 206, 204 or 304, streamed with sendfile."""
    plan = download.prepare_download(services(), current_caller(), download_request(image_id))
    return download_response(plan)


def download_request(image_id: str) -> download.DownloadRequest:
    """The headers of this GET or HEAD that shape a download (also used by signed links)."""
    return download.DownloadRequest(image_id=image_id, range=request.headers.get("Range"),
                                    content_range=request.headers.get("Content-Range"),
                                    if_range=request.headers.get("If-Range"),
                                    if_none_match=request.headers.get("If-None-Match"),
                                    prefer=request.args.get("prefer"), head=request.method == "HEAD")


def download_response(plan: download.Download) -> Response:
    """The response of a resolved download (also used by signed links)."""
    response = Response(status=plan.status, headers=plan.headers)
    if plan.body is not None:
        response.response = _body_of(plan, response)
        response.direct_passthrough = True
    return response


def _body_of(plan, response):
    """The response body: sendfile from a local file, nginx (X-Accel-Redirect), or streamed."""
    prefix = services().settings.accel_redirect_prefix
    if prefix and plan.body.accel_name:
        plan.body.close()
        # nginx sends the file and applies the (already validated) Range itself.
        response.headers["X-Accel-Redirect"] = f"{prefix}/{plan.place}/{plan.body.accel_name}"
        for name in ("Content-Length", "Content-Range", "Accept-Ranges"):
            response.headers.pop(name, None)
        return []
    local = plan.body.local_file()
    if local is not None:
        return wrap_file(request.environ, local, SEND_BUFFER)
    return ClosingIterator(iter(plan.body), [plan.body.close])
