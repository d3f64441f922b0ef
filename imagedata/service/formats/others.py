"""VirtualBox VDI, ISO 9660/UDF, MBR/GPT partition tables and LUKS version 1.

- VDI: only dynamic (1) and fixed (2) images of header version 1.1 with no link or parent
  UUID; undo and differencing images depend on another image.
- ISO: the volume descriptor at sector 16 says CD001 (ISO 9660) or NSR02/NSR03 (UDF);
  the virtual size is the primary volume descriptor's block count times its block size.
- MBR/GPT ("gpt", as oslo.utils names it): a boot-sector signature that is not a FAT boot
  record. Glance: its checks are the reference's; every boot flag is 0x00 or 0x80, at least
  one partition exists, and a protective 0xEE entry is the only entry, starts at LBA 1 and
  CHS 0/2/0.
- LUKS: version 1 only, the one qemu reads.
"""
from __future__ import annotations

import struct

from imagedata.service.formats.capture import Capture, Finding, u16le, u32le, u64le

VDI_SIGNATURE = 0xBEDA107F
VDI_VERSION = 0x00010001
VDI_DYNAMIC, VDI_FIXED = 1, 2
ISO_DESCRIPTOR = 16 * 2048
ISO_IDENTIFIERS = (b"CD001", b"NSR02", b"NSR03")
ISO_BLOCK_SIZES = (512, 1024, 2048, 4096)
MBR_SIGNATURE = b"\x55\xaa"
LUKS_MAGIC = b"LUKS\xba\xbe"


def probe_vdi(cap: Capture) -> Finding | None:
    """VirtualBox VDI: signature at 0x40, disk size at 0x170."""
    head = cap.head
    if len(head) < 0x44 or u32le(head, 0x40) != VDI_SIGNATURE:
        return None
    if cap.size < 512:
        return Finding("vdi", None, "truncated VDI header")
    size = u64le(head, 0x170)
    if u32le(head, 0x44) != VDI_VERSION:
        return Finding("vdi", size, f"unsupported VDI version {u32le(head, 0x44):#x}")
    if u32le(head, 0x4C) not in (VDI_DYNAMIC, VDI_FIXED):
        return Finding("vdi", size, f"VDI image type {u32le(head, 0x4C)} depends on another image")
    if any(head[0x1A8:0x1C8]):
        return Finding("vdi", size, "VDI image names a parent image")
    return Finding("vdi", size)


def probe_iso(cap: Capture) -> Finding | None:
    """ISO 9660 or UDF, recognised by the volume descriptor at sector 16."""
    head = cap.head
    if len(head) < ISO_DESCRIPTOR + 2048 or head[ISO_DESCRIPTOR + 1:ISO_DESCRIPTOR + 6] not in ISO_IDENTIFIERS:
        return None
    for offset in range(ISO_DESCRIPTOR, len(head) - 2047, 2048):
        descriptor = head[offset:offset + 2048]
        if descriptor[1:6] != b"CD001" or descriptor[0] == 255:
            break
        if descriptor[0] == 1:
            block_size = u16le(descriptor, 128)
            if block_size not in ISO_BLOCK_SIZES:
                return Finding("iso", None, f"ISO logical block size {block_size} is invalid")
            return Finding("iso", u32le(descriptor, 80) * block_size)
    # A UDF-only image has no primary volume descriptor: as a read-only disc its size is its length.
    return Finding("iso", cap.size)


def probe_gpt(cap: Capture) -> Finding | None:
    """An MBR (or a GPT's protective MBR); the disk is the data itself."""
    head = cap.head
    if len(head) < 512 or head[510:512] != MBR_SIGNATURE:
        return None
    if head[0x10] == 2 and head[0x15] == 0xF8:
        return None  # a FAT volume boot record, not a partition table
    return Finding("gpt", cap.size, _mbr_problem(bytes(head[446:510])))


def _mbr_problem(table: bytes) -> str | None:
    used, protective = [], False
    for index in range(4):
        boot, chs_start, kind, _chs_end, lba_start, _sectors = struct.unpack_from(
            "<B3sB3sII", table, 16 * index)
        if boot not in (0x00, 0x80):
            return f"MBR partition {index} has an invalid boot flag"
        if kind:
            used.append(index)
        if kind == 0xEE:
            protective = True
            if chs_start != b"\x00\x02\x00" or lba_start != 1:
                return "GPT protective MBR entry does not start at LBA 1"
    if protective and used != [0]:
        return "GPT protective MBR defines other partitions"
    if not used:
        return "MBR defines no partitions"
    return None


def probe_luks(cap: Capture) -> Finding | None:
    """LUKS: a raw encrypted volume; its disk is the data."""
    head = cap.head
    if head[:6] != LUKS_MAGIC:
        return None
    if cap.size < 592:
        return Finding("luks", None, "truncated LUKS header")
    version = int.from_bytes(head[6:8], "big")
    if version != 1:
        return Finding("luks", None, f"LUKS version {version} is not supported")
    return Finding("luks", cap.size)
