"""Disk-format sniffing of uploaded data: bounded, header-only, never runs an external tool.

As Glance does for ``container_format=bare``: the data must look like its declared
``disk_format`` (``raw`` accepts anything), qcow2 images may not name a backing or
external data file, and VMDK descriptors (which name other files) are refused.
``virtual_size`` comes from the format's header. Only the first 64 KiB and the last
512 bytes of the stream are kept.
"""
from __future__ import annotations

import struct

from imagedata.errors import UnsupportedMediaType

HEAD_BYTES = 64 * 1024
TAIL_BYTES = 512
UNINSPECTED_FORMATS = ("ami", "ari", "aki", "ploop")


class FormatSniffer:
    """Collects the bytes needed to recognise a disk format while the upload streams."""

    def __init__(self):
        self.head = bytearray()
        self.tail = b""

    def update(self, data) -> None:
        """Feed the next piece of the stream."""
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self.tail = (self.tail + bytes(data[-TAIL_BYTES:]))[-TAIL_BYTES:]

    def detect(self, size: int) -> tuple[str, int | None, str | None]:
        """(format, virtual size or None, safety problem or None) of what was seen."""
        head = bytes(self.head)
        for probe in (_qcow2, _vhdx, _vmdk, _vdi, _vhd_head, _iso):
            found = probe(head)
            if found:
                return found
        footer = _vhd_footer(self.tail) if size >= TAIL_BYTES else None
        return footer or ("raw", size, None)


def _u64be(data: bytes, offset: int) -> int:
    return struct.unpack_from(">Q", data, offset)[0]


def _qcow2(head: bytes):
    if len(head) < 104 or head[:4] != b"QFI\xfb":
        return None
    version = struct.unpack_from(">I", head, 4)[0]
    problem = None
    if _u64be(head, 8):
        problem = "qcow2 image names a backing file"
    elif version >= 3 and _u64be(head, 72) & 0x4:
        problem = "qcow2 image uses an external data file"
    return "qcow2", _u64be(head, 24), problem


def _vhdx(head: bytes):
    return ("vhdx", None, None) if head[:8] == b"vhdxfile" else None


def _vmdk(head: bytes):
    if head[:4] == b"KDMV" and len(head) >= 20:
        return "vmdk", struct.unpack_from("<Q", head, 12)[0] * 512, None
    if head.lstrip()[:21] == b"# Disk DescriptorFile":
        return "vmdk", None, "VMDK descriptor files reference other files"
    return None


def _vdi(head: bytes):
    if len(head) >= 0x178 and struct.unpack_from("<I", head, 0x40)[0] == 0xBEDA107F:
        return "vdi", struct.unpack_from("<Q", head, 0x170)[0], None
    return None


def _vhd_head(head: bytes):
    if head[:8] == b"conectix" and len(head) >= 56:
        return "vhd", _u64be(head, 48), None
    return None


def _vhd_footer(tail: bytes):
    if len(tail) == TAIL_BYTES and tail[:8] == b"conectix":
        return "vhd", _u64be(tail, 48), None
    return None


def _iso(head: bytes):
    if len(head) >= 0x8082 and head[0x8001:0x8006] == b"CD001":
        blocks = struct.unpack_from("<I", head, 0x8050)[0]
        block_size = struct.unpack_from("<H", head, 0x8080)[0]
        return "iso", blocks * block_size, None
    return None


def check_format(sniffer: FormatSniffer, disk_format: str, container_format: str, size: int) -> int | None:
    """Raise 415 when the data does not match ``disk_format``; return the virtual size."""
    if container_format != "bare" or disk_format in UNINSPECTED_FORMATS:
        return None
    detected, virtual_size, problem = sniffer.detect(size)
    if disk_format == "raw":
        return size
    if problem:
        raise UnsupportedMediaType(f"Image failed safety checks: {problem}.")
    if detected != disk_format:
        raise UnsupportedMediaType(f"Image disk_format {disk_format} does not match stream data {detected}.")
    if virtual_size is not None and virtual_size >= 2**63:
        raise UnsupportedMediaType("Image failed safety checks: its header claims an impossible virtual size.")
    return virtual_size
