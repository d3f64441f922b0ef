"""What proves that a resumed range belongs to the file a download started on: the first
answer's validator (a strong ETag, else Last-Modified) and its size."""
from __future__ import annotations

import dataclasses
import http.client
import re

CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclasses.dataclass(frozen=True)
class FileIdentity:
    """The validators and size of the whole-body answer a download started from."""

    etag: str | None = None
    last_modified: str | None = None
    size: int | None = None  # None: the server did not say (chunked)

    @classmethod
    def of(cls, response: http.client.HTTPResponse) -> FileIdentity:
        """The identity a 200 answer gives its file."""
        return cls(response.getheader("ETag"), response.getheader("Last-Modified"),
                   response.length if not response.chunked else None)

    def validator(self) -> str | None:
        """What a resumed request sends in If-Range (None: nothing proves the file unchanged)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def changed(self, response: http.client.HTTPResponse) -> str | None:
        """Why ``response`` is not from the same file (a new ETag or Last-Modified), or None."""
        for name, known in (("ETag", self.etag), ("Last-Modified", self.last_modified)):
            if known and response.getheader(name) != known:
                return f"the file changed (new {name})"
        return None

    def mismatch(self, response: http.client.HTTPResponse, position: int) -> str | None:
        """Why a 206 answer cannot continue the data at ``position``, or None."""
        match = CONTENT_RANGE_RE.match(response.getheader("Content-Range") or "")
        if not match or int(match.group(1)) != position:
            return "the server answered another range than the one asked for"
        if self.size is not None and match.group(3) != str(self.size):
            return "the file changed (new size)"
        return self.changed(response)
