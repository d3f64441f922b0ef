"""Range selection (pure): Glance's rules, werkzeug's parser, never an unexpected exception."""
import pytest

from imagedata.errors import BadRequest, RangeNotSatisfiable
from imagedata.service.ranges import ByteRange, select_range

XYZ = 3  # Glance's unit tests use the 3-byte image "XYZ"


@pytest.mark.parametrize("header,start,length", [
    ("bytes=1-2", 1, 2), ("bytes=1-", 1, 2), ("bytes=1-3", 1, 2), ("bytes=-2", 1, 2), ("bytes=1-100", 1, 2),
    ("bytes=0-", 0, 3), ("bytes=0-2", 0, 3), ("bytes=0-3", 0, 3), ("bytes=-3", 0, 3), ("bytes=-4", 0, 3),
    ("bytes=0-100", 0, 3), ("bytes=-100", 0, 3), ("bytes=0-0", 0, 1), ("bytes = 1-2", 1, 2),
    ("Bytes=1-2", 1, 2),
])
def test_satisfiable_ranges(header, start, length):
    assert select_range(header, None, XYZ) == ByteRange(start, length)


@pytest.mark.parametrize("header", [
    "bytes=4-1", "bytes=4-", "bytes=3-", "bytes=1", "bytes=100", "bytes=100-", "bytes=", "", "bytes=-0",
    "bytes=-", "bytes=--1", "bytes=abc", "bytes=1-2-3", "items=0-1", "bytes=\u0661-\u0662",
    "bytes=18446744073709551616-", "bytes=1-2 junk", "nonsense", "bytes=-1-", "bytes=0x1-2",
])
def test_unsatisfiable_or_malformed_ranges_are_416(header):
    with pytest.raises(RangeNotSatisfiable) as info:
        select_range(header, None, XYZ)
    assert info.value.headers["Content-Range"] == "bytes */3"


@pytest.mark.parametrize("header", ["bytes=0-0,-1", "bytes=0-1,5-6", "bytes=0-0, 1-1", "bytes=,"])
def test_multiple_ranges_are_400(header):
    with pytest.raises(BadRequest):
        select_range(header, None, XYZ)


def test_any_range_on_an_empty_image_is_416():
    for header in ("bytes=0-", "bytes=-1", "bytes=0-0"):
        with pytest.raises(RangeNotSatisfiable):
            select_range(header, None, 0)


@pytest.mark.parametrize("header,start,length", [
    ("bytes 1-2/3", 1, 2), ("bytes 1-2/*", 1, 2), ("bytes 0-0/3", 0, 1), ("bytes 0-2/100", 0, 3),
])
def test_legacy_content_range(header, start, length):
    assert select_range(None, header, XYZ) == ByteRange(start, length)


@pytest.mark.parametrize("header", [
    "bytes -3/3", "bytes 1-/3", "bytes 1-3/3", "bytes 1-4/3", "bytes 1-4/*", "bytes 4-1/3", "bytes 4-1/*",
    "bytes 4-8/*", "bytes 4-8/10", "bytes 4-8/3", "bytes */3", "bytes */*", "garbage", "",
])
def test_bad_legacy_content_range_is_416(header):
    with pytest.raises(RangeNotSatisfiable):
        select_range(None, header, XYZ)


def test_range_wins_over_content_range():
    assert select_range("bytes=0-0", "bytes 1-1/3", XYZ) == ByteRange(0, 1)


def test_no_headers_means_whole_image():
    assert select_range(None, None, XYZ) is None
