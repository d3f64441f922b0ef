"""QEMU's own formats: qcow2 (versions 2 and 3), the old qcow (version 1) and QED.

A qcow2 image is safe to hand to a hypervisor only if it is self-contained: no backing
file (and no backing-format extension, which exists only to describe one), no external
data file (the incompatible feature bit or the data-file-name extension), and no
incompatible feature this code does not know, because qemu would give such a bit a
meaning we did not check. Layout: docs/interop/qcow2.txt in the qemu sources.
"""
from __future__ import annotations

from imagedata.service.formats.capture import Capture, Finding, u32be, u64be

QCOW_MAGIC = b"QFI\xfb"
QED_MAGIC = b"QED\x00"
HEADER_BYTES = 512  # every sparse format's header sector; shorter data is a truncated header

# Incompatible feature bits (qcow2 version 3, header offset 72).
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTENDED_L2 = 1 << 4
INCOMPAT_KNOWN = (INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION
                  | INCOMPAT_EXTENDED_L2)

# Header extension types.
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_DATA_FILE = 0x44415441
EXT_LIMIT = 1024  # more extensions than this is no image qemu wrote


def probe_qcow2(cap: Capture) -> Finding | None:
    """qcow2 (and qcow version 1, which shares its magic)."""
    head = cap.head
    if head[:4] != QCOW_MAGIC:
        return None
    if cap.size < HEADER_BYTES:
        return Finding("qcow2", None, "truncated qcow2 header")
    version = u32be(head, 4)
    size = u64be(head, 24)
    if version == 1:
        return Finding("qcow2", size, "qcow version 1 images are not supported")
    if version not in (2, 3):
        return Finding("qcow2", size, f"unsupported qcow2 version {version}")
    return Finding("qcow2", size, _qcow2_problem(head, version))


def _qcow2_problem(head: bytes, version: int) -> str | None:
    if u64be(head, 8):
        return "qcow2 image names a backing file"
    cluster_bits = u32be(head, 20)
    if not 9 <= cluster_bits <= 21:
        return f"qcow2 cluster_bits {cluster_bits} is out of range"
    if u32be(head, 32) > 2:
        return "qcow2 image uses an unknown encryption method"
    header_length = 72
    if version == 3:
        incompatible = u64be(head, 72)
        if incompatible & INCOMPAT_DATA_FILE:
            return "qcow2 image uses an external data file"
        if incompatible & ~INCOMPAT_KNOWN:
            return f"qcow2 image has unknown incompatible features {incompatible & ~INCOMPAT_KNOWN:#x}"
        header_length = u32be(head, 100)
        if header_length < 104 or header_length % 8 or header_length > 1 << cluster_bits:
            return f"qcow2 header length {header_length} is invalid"
    return _extension_problem(head, header_length, 1 << cluster_bits)


def _extension_problem(head: bytes, offset: int, cluster_size: int) -> str | None:
    """Walk the header extensions (they end within the first cluster) as far as the head reaches."""
    end = min(cluster_size, len(head))
    for _ in range(EXT_LIMIT):
        if offset + 8 > end:
            return None  # the rest lies beyond what is kept; no safety-relevant field is there
        kind, length = u32be(head, offset), u32be(head, offset + 4)
        if kind == EXT_END:
            return None
        if kind == EXT_BACKING_FORMAT:
            return "qcow2 image names a backing file format"
        if kind == EXT_DATA_FILE:
            return "qcow2 image names an external data file"
        offset += 8 + (length + 7) // 8 * 8
        if offset > cluster_size:
            return "qcow2 header extensions run past the first cluster"
    return "qcow2 image has too many header extensions"


def probe_qed(cap: Capture) -> Finding | None:
    """QED: recognised so it is never taken for raw, and always refused."""
    if cap.head[:4] != QED_MAGIC:
        return None
    size = int.from_bytes(cap.head[48:56], "little") if len(cap.head) >= 56 else None
    # Glance: QED is banned outright (oslo.utils' inspector); qemu itself deprecates it.
    return Finding("qed", size, "QED images are not supported")
