"""Domain errors, each carrying its HTTP status. Services raise; one renderer answers."""
from __future__ import annotations


class ImageDataError(Exception):
    """Base of every error the service reports to a client."""

    status = 500
    title = "Internal Server Error"

    def __init__(self, message: str = "", headers: dict | None = None):
        super().__init__(message or self.__doc__)
        self.message = message or (self.__doc__ or "").strip()
        self.headers = headers or {}


class BadRequest(ImageDataError):
    """The request is malformed."""

    status, title = 400, "Bad Request"


class ClientAborted(BadRequest):
    """The client stopped sending the image data before the end of the body."""


class BadFraming(ClientAborted):
    """The chunked framing of an upload body is broken."""


class Unauthorized(ImageDataError):
    """This server could not verify that you are authorized to access the resource."""

    status, title = 401, "Unauthorized"


class Forbidden(ImageDataError):
    """Access was denied to this resource."""

    status, title = 403, "Forbidden"


class NotFound(ImageDataError):
    """The resource could not be found."""

    status, title = 404, "Not Found"


class ImageNotFound(NotFound):
    """No image with that id is visible to the caller."""

    def __init__(self, image_id: str):
        super().__init__(f"No image found with ID {image_id}")


class MethodNotAllowed(ImageDataError):
    """The method is not allowed for this resource."""

    status, title = 405, "Method Not Allowed"


class Conflict(ImageDataError):
    """There was a conflict when trying to complete your request."""

    status, title = 409, "Conflict"


class InvalidImageState(Conflict):
    """The image is not in a state that allows this operation."""


class Gone(ImageDataError):
    """The image was deleted while its data was being uploaded."""

    status, title = 410, "Gone"


class LengthRequired(ImageDataError):
    """A chunked body cannot be read safely by this server."""

    status, title = 411, "Length Required"


class PreconditionFailed(ImageDataError):
    """A precondition of the request was not met."""

    status, title = 412, "Precondition Failed"


class TooLarge(ImageDataError):
    """The body of your request was too large for this server."""

    status, title = 413, "Request Entity Too Large"


class UnsupportedMediaType(ImageDataError):
    """The request media type is not supported by this server."""

    status, title = 415, "Unsupported Media Type"


class RangeNotSatisfiable(ImageDataError):
    """The Range requested is not available."""

    status, title = 416, "Requested Range Not Satisfiable"


class NotImplementedByServer(ImageDataError):
    """The server does not support this request."""

    status, title = 501, "Not Implemented"


class ServiceUnavailable(ImageDataError):
    """The service is unavailable right now; try again later."""

    status, title = 503, "Service Unavailable"


class StoreFull(TooLarge):
    """Image storage media is full."""


class StoreUnavailable(ServiceUnavailable):
    """The image store cannot be used right now."""


class ImageDataUnavailable(ServiceUnavailable):
    """The image's stored data is missing or damaged; it cannot be served."""


# Messages that say what to do: the request's mistake, then the fix.

def _quoted(text: str, limit: int = 80) -> str:
    """Client text quoted in a message: printable and short."""
    cut = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return repr(cut + ("..." if len(text) > limit else ""))


def unsupported_media_type(content_type: str | None, what: str, accepted: tuple[str, ...],
                           headers: dict | None = None) -> UnsupportedMediaType:
    """415 naming the media type to send ``what`` with (the first of ``accepted``, then the others)."""
    got = ("The request has no Content-Type" if not content_type
           else f"Content-Type {_quoted(content_type)} is not supported")
    first, *others = accepted
    alternatives = "".join(f" (or {other})" for other in others)
    return UnsupportedMediaType(f"{got}: send {what} with Content-Type: {first}{alternatives}.", headers=headers)


def not_an_object(body, what: str, example: str) -> BadRequest:
    """400 for a JSON body that is valid JSON but not the object a call expects."""
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null", int: "a number",
             float: "a number"}
    return BadRequest(f"The request body must be a JSON object of {what}, such as {example}; "
                      f"it is {kinds.get(type(body), 'not an object')}.")
