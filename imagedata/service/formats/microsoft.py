"""Microsoft's formats: VHD (qemu's "vpc") and VHDX.

VHD: the 512-byte footer ends the file; dynamic disks also copy it to offset 0 (qemu
probes only that copy; fixed disks have only the last one). A differencing disk names its
parent, so only fixed (2) and dynamic (3) disks are accepted.

VHDX: the region table (192 KiB) points at the metadata region, whose table points at the
virtual-disk-size and file-parameter items; these lie anywhere in the file, so a planner
asks for them while the upload streams. A differencing disk (HasParent, a parent locator),
a region or metadata item marked required that this code does not know, and a header whose
log still has to be replayed (the metadata read here would not be the final one) are refused.
Layout: Microsoft's [MS-VHDX] and the "Virtual Hard Disk Image Format Specification".
"""
from __future__ import annotations

import uuid

from imagedata.service.formats.capture import Capture, Finding, u16le, u32be, u32le, u64be, u64le

VHD_COOKIE = b"conectix"
VHD_FIXED, VHD_DYNAMIC, VHD_DIFFERENCING = 2, 3, 4

VHDX_SIGNATURE = b"vhdxfile"
VHDX_HEADERS = (64 * 1024, 128 * 1024)
VHDX_REGION_TABLE = 192 * 1024
VHDX_TABLE_BYTES = 64 * 1024
VHDX_ENTRIES_MAX = 2047


def _guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


REGION_BAT = _guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
REGION_METADATA = _guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
ITEM_FILE_PARAMETERS = _guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
ITEM_VIRTUAL_DISK_SIZE = _guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
ITEM_PARENT_LOCATOR = _guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
KNOWN_ITEMS = {
    ITEM_FILE_PARAMETERS, ITEM_VIRTUAL_DISK_SIZE, ITEM_PARENT_LOCATOR,
    _guid("BECA12AB-B2E6-4523-93EF-C309E000C746"),  # page 83 data
    _guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F"),  # logical sector size
    _guid("CDA348C7-445D-4471-9CC9-E9885251C556"),  # physical sector size
}
WANTED_ITEMS = {"vhdx.params": ITEM_FILE_PARAMETERS, "vhdx.size": ITEM_VIRTUAL_DISK_SIZE}
HAS_PARENT = 0x2


def probe_vhd(cap: Capture) -> Finding | None:
    """A VHD footer at offset 0 (dynamic) or in the last 512 bytes (fixed and dynamic)."""
    if cap.head[:8] == VHD_COOKIE:
        footer = bytes(cap.head[:512])
    elif cap.size >= 512 and cap.tail[-512:][:8] == VHD_COOKIE:
        footer = cap.tail[-512:]
    else:
        return None
    if len(footer) < 512:
        return Finding("vhd", None, "truncated VHD footer")
    disk_type = u32be(footer, 60)
    size = u64be(footer, 48)
    if disk_type == VHD_DIFFERENCING:
        return Finding("vhd", size, "differencing VHD names a parent disk")
    if disk_type not in (VHD_FIXED, VHD_DYNAMIC):
        return Finding("vhd", size, f"unknown VHD disk type {disk_type}")
    if disk_type == VHD_DYNAMIC:
        dynamic = cap.read(min(u64be(footer, 16), 1 << 62), 1024)
        if dynamic is None or dynamic[:8] != b"cxsparse":
            return Finding("vhd", size, "VHD dynamic disk header is missing")
    return Finding("vhd", size)


def plan_vhdx(cap: Capture) -> bool:
    """Ask for the VHDX structures beyond the head as soon as their offsets are known."""
    if len(cap.head) < 8:
        return False
    if cap.head[:8] != VHDX_SIGNATURE:
        return True
    if not (cap.want("vhdx.header2", VHDX_HEADERS[1], 4096)
            and cap.want("vhdx.regions", VHDX_REGION_TABLE, VHDX_TABLE_BYTES)):
        return True
    table = cap.region("vhdx.regions")
    if table is None:
        return cap.regions["vhdx.regions"].missed
    meta = _metadata_entry(table)
    if meta is None or not cap.want("vhdx.metadata", meta, VHDX_TABLE_BYTES):
        return True
    items = cap.region("vhdx.metadata")
    if items is None:
        return cap.regions["vhdx.metadata"].missed
    for name, guid in WANTED_ITEMS.items():
        found = _item(items, guid)
        if found is not None:
            cap.want(name, meta + found, 8)
    return True


def _metadata_entry(table: bytes) -> int | None:
    if table[:4] != b"regi" or u32le(table, 8) > VHDX_ENTRIES_MAX:
        return None
    for index in range(u32le(table, 8)):
        entry = table[16 + 32 * index:48 + 32 * index]
        if entry[:16] == REGION_METADATA:
            return u64le(entry, 16)
    return None


def _item(items: bytes, guid: bytes) -> int | None:
    if items[:8] != b"metadata" or u16le(items, 10) > VHDX_ENTRIES_MAX:
        return None
    for index in range(u16le(items, 10)):
        entry = items[32 + 32 * index:64 + 32 * index]
        if entry[:16] == guid:
            return u32le(entry, 16)
    return None


def probe_vhdx(cap: Capture) -> Finding | None:
    """VHDX: virtual size from the metadata region; differencing and unreplayed logs refused."""
    if cap.head[:8] != VHDX_SIGNATURE:
        return None
    table, items = cap.region("vhdx.regions"), cap.region("vhdx.metadata")
    problem = _vhdx_header_problem(cap) or _vhdx_table_problem(table, items)
    if problem is not None:
        return Finding("vhdx", None, problem)
    meta = _metadata_entry(table)
    params, size = (_item_bytes(cap, meta, items, guid) for guid in (ITEM_FILE_PARAMETERS, ITEM_VIRTUAL_DISK_SIZE))
    if params is None or size is None:
        return Finding("vhdx", None, "VHDX file parameters or virtual disk size could not be read")
    if u32le(params, 4) & HAS_PARENT:
        return Finding("vhdx", u64le(size, 0), "differencing VHDX names a parent disk")
    return Finding("vhdx", u64le(size, 0))


def _item_bytes(cap: Capture, meta: int | None, items: bytes, guid: bytes) -> bytes | None:
    offset = _item(items, guid)
    return None if meta is None or offset is None else cap.read(meta + offset, 8)


def _vhdx_header_problem(cap: Capture) -> str | None:
    headers = [cap.read(VHDX_HEADERS[0], 4096), cap.region("vhdx.header2")]
    valid = [h for h in headers if h is not None and h[:4] == b"head"]
    if not valid:
        return "VHDX headers are missing"
    current = max(valid, key=lambda h: u64le(h, 8))
    if u16le(current, 66) != 1:
        return f"unsupported VHDX version {u16le(current, 66)}"
    if any(current[48:64]):
        return "VHDX log must be replayed before the image can be read"
    return None


def _vhdx_table_problem(table: bytes | None, items: bytes | None) -> str | None:
    if table is None or table[:4] != b"regi":
        return "VHDX region table is missing"
    count = u32le(table, 8)
    if count > VHDX_ENTRIES_MAX:
        return "VHDX region table has too many entries"
    for index in range(count):
        entry = table[16 + 32 * index:48 + 32 * index]
        if entry[:16] not in (REGION_BAT, REGION_METADATA) and u32le(entry, 28) & 1:
            return "VHDX has a required region this inspector does not know"
    if items is None or items[:8] != b"metadata":
        return "VHDX metadata table is missing"
    count = u16le(items, 10)
    if count > VHDX_ENTRIES_MAX:
        return "VHDX metadata table has too many entries"
    for index in range(count):
        entry = items[32 + 32 * index:64 + 32 * index]
        if entry[:16] == ITEM_PARENT_LOCATOR:
            return "differencing VHDX names a parent disk"
        if entry[:16] not in KNOWN_ITEMS and u32le(entry, 24) & 0x4:
            return "VHDX has a required metadata item this inspector does not know"
    return None
