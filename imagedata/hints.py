"""Errors that say what to do next: the media type to send, where to resume, the stores that exist.

Each function builds one domain error (its status as Glance answers it) whose message names
the fix. Services and views raise what these return; nothing here reads a request.
"""
from __future__ import annotations

import socket

from imagedata.errors import BadRequest, Conflict, InvalidImageState, UnsupportedMediaType

OCTET_STREAM = "application/octet-stream"
IMAGE_EXAMPLE = '{"name": "cirros", "disk_format": "qcow2", "container_format": "bare"}'


def shown(text: str | None, limit: int = 80) -> str:
    """Client text quoted in a message: printable and short."""
    text = text or ""
    text = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return repr(text + ("..." if len(text) == limit else ""))


def upload_media_type(content_type: str | None) -> UnsupportedMediaType:
    """415 for PUT /file whose body is not declared application/octet-stream."""
    got = "The request has no Content-Type" if not content_type else f"Content-Type {shown(content_type)} is not supported"
    return UnsupportedMediaType(f"{got}: send image data with Content-Type: {OCTET_STREAM}.")


def patch_media_type(content_type: str | None, media_types: tuple[str, ...]) -> UnsupportedMediaType:
    """415 for a PATCH that is not one of the JSON-patch media types (listed in Accept-Patch too)."""
    got = "The request has no Content-Type" if not content_type else f"Content-Type {shown(content_type)} is not supported"
    first, *others = media_types
    alternatives = "".join(f" (or {other})" for other in others)
    return UnsupportedMediaType(f"{got}: send a JSON patch with Content-Type: {first}{alternatives}.",
                                headers={"Accept-Patch": ", ".join(media_types)})


def not_queued(image_id: str, status: str) -> InvalidImageState:
    """409 for an upload to an image that is not waiting for data."""
    if status in ("active", "deactivated"):
        return InvalidImageState(f"Image {image_id} already has data (status {status}); image data is never "
                                 "replaced: create a new image to upload other data.")
    if status == "saving":
        return InvalidImageState(f"Image {image_id} is receiving data from another upload (status saving): wait "
                                 "for it to end; if it fails, the image is queued again and accepts an upload.")
    return InvalidImageState(f"Image {image_id} is {status}: only a queued image accepts data.")


def unknown_store(store_id: str, store_ids: list[str], default_id: str) -> BadRequest:
    """400 for an X-Image-Meta-Store that names no configured store."""
    name = store_id if len(store_id) <= 64 and store_id.isprintable() else "(invalid)"
    return BadRequest(f"Store for identifier {name} not found. The stores are: {', '.join(store_ids)}; name one "
                      f"in X-Image-Meta-Store, or send none for the default ({default_id}).")


def deleted_id(image_id: str) -> Conflict:
    """409 for a create that names the id of a deleted image."""
    return Conflict(f"An image with identifier {image_id} existed and was deleted; image ids are never reused: "
                    "create the image without an id (one is chosen for it) or with a new one.")


def not_an_object(body, what: str, example: str) -> BadRequest:
    """400 for a JSON body that is valid JSON but not the object a call expects."""
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null", int: "a number",
             float: "a number"}
    return BadRequest(f"The request body must be a JSON object of {what}, such as {example}; "
                      f"it is {kinds.get(type(body), 'not an object')}.")


def interrupted_upload(exc: BadRequest, received: int, expected: int | None, kept_seconds: int,
                       idle_timeout: float, resumable: bool = True) -> BadRequest:
    """The 400 of a body that stopped short: how much arrived, and whether and how to resume.

    ``exc`` is the reader's ClientAborted (its class is kept, so metrics still count it as the
    client's); ``kept_seconds`` is how long the arrived bytes are kept (0: they were not);
    ``resumable`` is false when the server has resumable uploads turned off.
    """
    why = _why(exc, idle_timeout)
    if expected is None:
        text = (f"The upload was cut off after {received} bytes ({why}). Nothing was kept, as the image size "
                "was not declared: upload the image again; with Content-Length or x-openstack-image-size the "
                "upload can be resumed after a cut.")
    elif kept_seconds:
        text = (f"The upload was cut off after {received} of {expected} bytes ({why}). The {received} bytes "
                f"are kept for {duration(kept_seconds)}: resume by sending the rest with "
                f"Content-Range: bytes {received}-{expected - 1}/{expected} (curl -C {received} -T FILE); "
                "HEAD on this URL shows the kept bytes in Upload-Offset.")
    else:
        off = "" if resumable else " (resumable uploads are off on this server)"
        text = (f"The upload was cut off after {received} of {expected} bytes ({why}). Nothing was kept{off}: "
                "upload the whole image again.")
    return type(exc)(text)


def _why(exc: BaseException, idle_timeout: float) -> str:
    """Why the body stopped, from the error the reader caught (its context)."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return f"no data arrived for {idle_timeout:g} seconds"
    if isinstance(cause, ConnectionResetError):
        return "the connection was reset"
    if isinstance(cause, OSError):
        return f"the connection failed: {type(cause).__name__}"
    message = getattr(exc, "message", "")
    if cause is None and message and not message.startswith("The upload"):  # e.g. broken chunked framing
        return message.rstrip(".")[:1].lower() + message.rstrip(".")[1:]
    return "the connection closed before the end of the body"


def duration(seconds: int) -> str:
    """``86400`` -> ``24 hours``; ``90`` -> ``90 seconds``; ``5400`` -> ``90 minutes``."""
    for size, unit in ((3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
