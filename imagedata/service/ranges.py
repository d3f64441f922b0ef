"""Choosing the byte range of a download: werkzeug parses, Glance's rules decide.

Glance: a multi-range request is 400; a suffix longer than the image returns the
whole image; an end past the image is clamped; `bytes=0-` is still a 206. Beyond
Glance: every unsatisfiable or malformed value is 416 (never 500), and the legacy
`Content-Range` request header is clamped to the image instead of overstating.
"""
from __future__ import annotations

import dataclasses

from werkzeug.http import parse_content_range_header, parse_range_header

from imagedata.errors import BadRequest, RangeNotSatisfiable


@dataclasses.dataclass(frozen=True)
class ByteRange:
    """A satisfiable slice of the image: ``length`` bytes from ``start``."""

    start: int
    length: int

    @property
    def last(self) -> int:
        """Index of the last byte (inclusive), as Content-Range writes it."""
        return self.start + self.length - 1


def check_multi_range(range_header: str | None) -> None:
    """Glance: requests with multiple ranges are refused with 400."""
    if range_header is not None and "," in range_header:
        raise BadRequest("Requests with multiple ranges are not supported. "
                         "You may make multiple single-range requests instead.")


def select_range(range_header: str | None, content_range_header: str | None, size: int) -> ByteRange | None:
    """The slice to send, or None for the whole image. Raises 400 or 416."""
    if range_header is not None:
        check_multi_range(range_header)
        return _from_range(range_header, size)
    if content_range_header is not None:
        return _from_legacy_content_range(content_range_header, size)
    return None


def _unsatisfiable(size: int, why: str) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(why, headers={"Content-Range": f"bytes */{size}"})


def _from_range(value: str, size: int) -> ByteRange:
    parsed = parse_range_header(value)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        raise _unsatisfiable(size, "Invalid Range header.")
    start, stop = parsed.ranges[0]
    if size == 0:
        raise _unsatisfiable(size, "The image is empty; no range of it can be returned.")
    if start < 0:
        # Glance: a suffix at least as long as the image returns the whole image.
        start = max(size + start, 0)
        return ByteRange(start, size - start)
    if start >= size:
        raise _unsatisfiable(size, f"Invalid start position in Range header. Start position MUST be "
                                   f"in the inclusive range [0, {size - 1}].")
    end = size if stop is None else min(stop, size)
    return ByteRange(start, end - start)


def _from_legacy_content_range(value: str, size: int) -> ByteRange:
    parsed = parse_content_range_header(value.strip())
    if parsed is None or parsed.units != "bytes" or parsed.start is None or parsed.stop is None:
        raise _unsatisfiable(size, "Invalid Content-Range header.")
    start, last = parsed.start, parsed.stop - 1
    if parsed.length is not None and last >= parsed.length:
        raise _unsatisfiable(size, "Content-Range end is past its own length.")
    if parsed.length is None and last >= size:
        raise _unsatisfiable(size, "Content-Range end is past the end of the image.")
    if start >= size:
        raise _unsatisfiable(size, "Content-Range start is past the end of the image.")
    last = min(last, size - 1)
    return ByteRange(start, last - start + 1)
