"""What the inspector keeps of an upload: a bounded head, a tail and a few requested regions.

The upload streams through ``FormatSniffer.update`` once. The sniffer keeps the first
``HEAD_BYTES`` and the last ``TAIL_BYTES``; formats whose metadata lies further in (the
VHDX region table and metadata table) ask for a region by offset while the stream is
still before it, through a *planner* that runs after each piece until it says it is done.
Every region is capped, so memory stays bounded whatever the image's size or its headers
claim.
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Callable, Iterable

HEAD_BYTES = 128 * 1024
TAIL_BYTES = 1536  # a VMDK stream footer (marker, footer header, end-of-stream marker)
REGION_MAX = 64 * 1024
REGIONS_MAX = 8


@dataclasses.dataclass
class Finding:
    """One format recognised in the data: its name, virtual size and safety problem (if any)."""

    name: str
    virtual_size: int | None
    problem: str | None = None


@dataclasses.dataclass
class Region:
    """Bytes wanted at [offset, offset + length) of the stream."""

    offset: int
    length: int
    data: bytearray = dataclasses.field(default_factory=bytearray)
    missed: bool = False  # the stream went past a wanted byte before the region was asked for

    @property
    def complete(self) -> bool:
        """Whether every wanted byte has been seen."""
        return len(self.data) == self.length

    def take(self, chunk, start: int) -> None:
        """Copy the part of ``chunk`` (which begins at stream offset ``start``) that falls in the region."""
        want = self.offset + len(self.data)
        if self.missed or len(self.data) == self.length or want >= start + len(chunk):
            return
        if want < start:
            self.missed = True
            return
        self.data += chunk[want - start:want - start + self.length - len(self.data)]


class Capture:
    """Read access to what the sniffer kept, for the probes and planners."""

    def __init__(self):
        self.size = 0
        self.head = bytearray()
        self.tail = b""
        self.regions: dict[str, Region] = {}

    def read(self, offset: int, length: int) -> bytes | None:
        """``length`` bytes at ``offset`` if they were kept (head, tail or a region), else None."""
        if offset < 0 or length < 0:
            return None
        if offset + length <= len(self.head):
            return bytes(self.head[offset:offset + length])
        tail_start = self.size - len(self.tail)
        if offset >= tail_start and offset + length <= self.size:
            return self.tail[offset - tail_start:offset - tail_start + length]
        for region in self.regions.values():
            if region.offset <= offset and offset + length <= region.offset + len(region.data):
                return bytes(region.data[offset - region.offset:offset - region.offset + length])
        return None

    def want(self, name: str, offset: int, length: int) -> bool:
        """Ask for a region of at most REGION_MAX bytes; False when no more regions may be asked for."""
        if name in self.regions:
            return True
        if len(self.regions) >= REGIONS_MAX or offset < 0:
            return False
        region = Region(offset, max(0, min(length, REGION_MAX)))
        if offset < len(self.head):
            region.data += self.head[offset:offset + region.length]
        self.regions[name] = region
        return True

    def region(self, name: str) -> bytes | None:
        """The bytes of a region once all of them were seen, else None."""
        region = self.regions.get(name)
        return bytes(region.data) if region is not None and region.complete else None


Planner = Callable[[Capture], bool]  # asks for regions; returns True when it needs nothing more


class StreamCapture(Capture):
    """Collects, while the upload streams, the bytes needed to recognise and check its format."""

    def __init__(self, planners: Iterable[Planner] = ()):
        super().__init__()
        self._planners = list(planners)

    def update(self, data) -> None:
        """Feed the next piece of the stream."""
        start = self.size
        self.size += len(data)
        if len(self.head) < HEAD_BYTES:
            self.head += data[:HEAD_BYTES - len(self.head)]
        if len(data) >= TAIL_BYTES:
            self.tail = bytes(data[-TAIL_BYTES:])
        else:
            self.tail = (self.tail + bytes(data))[-TAIL_BYTES:]
        for region in self.regions.values():
            region.take(data, start)
        while self._planners:
            before = set(self.regions)
            self._planners = [plan for plan in self._planners if not plan(self)]
            added = [region for name, region in self.regions.items() if name not in before]
            if not added:
                break
            for region in added:  # a new region may begin inside the piece just seen
                region.take(data, start)


def u16le(data: bytes, offset: int) -> int:
    """Little-endian unsigned 16-bit integer at ``offset``."""
    return struct.unpack_from("<H", data, offset)[0]


def u32le(data: bytes, offset: int) -> int:
    """Little-endian unsigned 32-bit integer at ``offset``."""
    return struct.unpack_from("<I", data, offset)[0]


def u64le(data: bytes, offset: int) -> int:
    """Little-endian unsigned 64-bit integer at ``offset``."""
    return struct.unpack_from("<Q", data, offset)[0]


def u32be(data: bytes, offset: int) -> int:
    """Big-endian unsigned 32-bit integer at ``offset``."""
    return struct.unpack_from(">I", data, offset)[0]


def u64be(data: bytes, offset: int) -> int:
    """Big-endian unsigned 64-bit integer at ``offset``."""
    return struct.unpack_from(">Q", data, offset)[0]
