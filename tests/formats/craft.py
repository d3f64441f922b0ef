"""Byte-level tools for the hostile corpus: patch headers of real images, build small ones with struct."""
from __future__ import annotations

import random
import struct
from pathlib import Path

QCOW2_EXT_BACKING_FORMAT = 0xE2792ACA
QCOW2_EXT_DATA_FILE = 0x44415441
QCOW2_EXT_LUKS = 0x0537BE77
VMDK_GD_AT_END = 0xFFFFFFFFFFFFFFFF


def pseudo_random(size: int, seed: int) -> bytes:
    """Reproducible bytes that look random."""
    return random.Random(seed).randbytes(size)


def patch(data: bytes, offset: int, value: bytes) -> bytes:
    """``data`` with ``value`` written at ``offset``."""
    out = bytearray(data)
    out[offset:offset + len(value)] = value
    return bytes(out)


# qcow2 ---------------------------------------------------------------------------------------

def qcow2_incompatible(data: bytes, bits: int) -> bytes:
    """A qcow2 (version 3) with extra incompatible feature bits set."""
    current = struct.unpack_from(">Q", data, 72)[0]
    return patch(data, 72, struct.pack(">Q", current | bits))


def _qcow2_extensions(data: bytes) -> tuple[int, int, list[tuple[int, bytes]]]:
    """(start, end of the area, extensions) of a version 3 qcow2 header."""
    start = struct.unpack_from(">I", data, 100)[0]
    backing = struct.unpack_from(">Q", data, 8)[0]
    end = backing or 1 << struct.unpack_from(">I", data, 20)[0]
    found, offset = [], start
    while True:
        kind, length = struct.unpack_from(">II", data, offset)
        if kind == 0:
            return start, end, found
        found.append((kind, data[offset + 8:offset + 8 + length]))
        offset += 8 + (length + 7) // 8 * 8


def _qcow2_with_extensions(data: bytes, extensions: list[tuple[int, bytes]]) -> bytes:
    start, end, _ = _qcow2_extensions(data)
    area = b"".join(struct.pack(">II", kind, len(payload)) + payload + bytes(-len(payload) % 8)
                    for kind, payload in extensions) + bytes(8)
    assert start + len(area) <= end, "extensions must fit before the backing file name"
    return patch(data, start, area + bytes(end - start - len(area)))


def qcow2_drop_extension(source: Path, target: Path, kind: int) -> None:
    """Copy a qcow2 without one kind of header extension."""
    data = source.read_bytes()
    kept = [(k, p) for k, p in _qcow2_extensions(data)[2] if k != kind]
    target.write_bytes(_qcow2_with_extensions(data, kept))


def qcow2_add_extension(source: Path, target: Path, kind: int, payload: bytes) -> None:
    """Copy a qcow2 with one more header extension (first in the list)."""
    data = source.read_bytes()
    target.write_bytes(_qcow2_with_extensions(data, [(kind, payload), *_qcow2_extensions(data)[2]]))


def qcow2_set_data_file(path: Path, name: str) -> None:
    """Point a qcow2's external data file name (made by qemu-img with a harmless one) at ``name``."""
    data = path.read_bytes()
    extensions = [(k, name.encode() if k == QCOW2_EXT_DATA_FILE else p) for k, p in _qcow2_extensions(data)[2]]
    path.write_bytes(_qcow2_with_extensions(data, extensions))


def luks_from_qcow2(source: Path, target: Path, payload: int) -> None:
    """A raw LUKS volume: the LUKS header a LUKS-encrypted qcow2 carries, then ``payload`` bytes."""
    data = source.read_bytes()
    _, _, extensions = _qcow2_extensions(data)
    offset, length = struct.unpack(">QQ", next(p for k, p in extensions if k == QCOW2_EXT_LUKS))
    with open(target, "wb") as f:
        f.write(data[offset:offset + length])
        f.truncate(length + payload)


# VMDK ----------------------------------------------------------------------------------------

def vmdk_descriptor(create_type: str = "monolithicSparse", extents: list[str] | None = None,
                    extra: list[str] = (), parent_cid: str = "ffffffff") -> str:
    """A VMDK descriptor text."""
    lines = ["# Disk DescriptorFile", "version=1", "CID=fffffffe", f"parentCID={parent_cid}", *extra,
             f'createType="{create_type}"', "", "# Extent description",
             *(extents or ['RW 32768 SPARSE "x.vmdk"']), "", "# The Disk Data Base", "#DDB", "",
             'ddb.virtualHWVersion = "4"', 'ddb.adapterType = "ide"', ""]
    return "\n".join(lines)


class VmdkSparse:
    """A monolithicSparse VMDK made by qemu-img, whose embedded descriptor and header are rewritten."""

    def __init__(self, data: bytes):
        self.data = data
        self.desc_sectors = struct.unpack_from("<Q", data, 36)[0]

    def with_descriptor(self, text: str, capacity: int | None = None, desc_sector: int = 1) -> bytes:
        """The image with ``text`` at sector 1 and the header fields given."""
        raw = text.encode("ascii")
        room = self.desc_sectors * 512
        assert len(raw) < room
        out = patch(self.data, 512, raw + bytes(room - len(raw)))
        if capacity is not None:
            out = patch(out, 12, struct.pack("<Q", capacity))
        return patch(out, 28, struct.pack("<Q", desc_sector))


def vmdk_stream_footer(data: bytes, footer_desc_sectors: int | None = None) -> bytes:
    """A streamOptimized VMDK rewritten the way VMware writes it: grain directory "at the end", footer."""
    header = data[:512]
    footer = header if footer_desc_sectors is None else patch(header, 36, struct.pack("<Q", footer_desc_sectors))
    marker = struct.pack("<QII", 1, 0, 3) + bytes(496)
    body = patch(data, 56, struct.pack("<Q", VMDK_GD_AT_END))
    return body + marker + footer + bytes(512)


# VHD, VHDX -----------------------------------------------------------------------------------

def _vhd_checksum(footer: bytes) -> bytes:
    zeroed = footer[:64] + bytes(4) + footer[68:]
    return struct.pack(">I", ~sum(zeroed) & 0xFFFFFFFF)


def vhd_patch(data: bytes, disk_type: int | None = None, current_size: int | None = None) -> bytes:
    """A dynamic VHD with both footer copies changed and their checksums kept right."""
    def fix(footer: bytes) -> bytes:
        if disk_type is not None:
            footer = patch(footer, 60, struct.pack(">I", disk_type))
        if current_size is not None:
            footer = patch(footer, 48, struct.pack(">Q", current_size))
        return patch(footer, 64, _vhd_checksum(footer))
    return fix(data[:512]) + data[512:-512] + fix(data[-512:])


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of VHDX headers."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def vhdx_log_guid(data: bytes, guid: bytes) -> bytes:
    """A VHDX whose two headers say a log with ``guid`` must be replayed (checksums kept right)."""
    out = data
    for offset in (64 * 1024, 128 * 1024):
        header = patch(patch(out[offset:offset + 4096], 48, guid), 4, bytes(4))
        out = patch(out, offset, patch(header, 4, struct.pack("<I", crc32c(header))))
    return out


def vhdx_file_parameters(data: bytes, flags: int) -> bytes:
    """A VHDX whose file-parameters item has ``flags`` (0x2: HasParent)."""
    import uuid
    metadata_guid = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
    params_guid = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B").bytes_le
    table = 192 * 1024
    count = struct.unpack_from("<I", data, table + 8)[0]
    meta = next(struct.unpack_from("<Q", data, table + 16 + 32 * i + 16)[0] for i in range(count)
                if data[table + 16 + 32 * i:table + 32 + 32 * i] == metadata_guid)
    items = struct.unpack_from("<H", data, meta + 10)[0]
    item = next(struct.unpack_from("<I", data, meta + 32 + 32 * i + 16)[0] for i in range(items)
                if data[meta + 32 + 32 * i:meta + 48 + 32 * i] == params_guid)
    return patch(data, meta + item + 4, struct.pack("<I", flags))


# MBR, GPT, boot sectors ----------------------------------------------------------------------

def with_mbr(data: bytes, entries: list[tuple[int, int, int, int]]) -> bytes:
    """``data`` with an MBR: entries are (boot flag, type, start LBA, slot)."""
    out = bytearray(data)
    out[446:510] = bytes(64)
    for boot, kind, lba, slot in entries:
        chs = b"\x00\x02\x00" if lba == 1 else b"\x01\x01\x00"
        struct.pack_into("<B3sB3sII", out, 446 + 16 * slot, boot, chs, kind, b"\xfe\xff\xff", lba, 2000)
    out[510:512] = b"\x55\xaa"
    return bytes(out)


def with_protective_mbr(data: bytes, gpt_header: bool = False) -> bytes:
    """``data`` with a GPT protective MBR (and, if asked, a GPT header signature at LBA 1)."""
    out = with_mbr(data, [(0, 0xEE, 1, 0)])
    return patch(out, 512, b"EFI PART") if gpt_header else out


def fat_boot_record(data: bytes) -> bytes:
    """A FAT volume boot record: it carries 0x55AA but is no partition table."""
    bpb = b"\xeb\x3c\x90MSDOS5.0" + struct.pack("<HBHBHHBH", 512, 4, 1, 2, 512, 2048, 0xF8, 8)
    return patch(patch(data, 0, bpb), 510, b"\x55\xaa")


def kernel_like() -> bytes:
    """A file shaped like a Linux bzImage: a legacy boot sector (code, 0x55AA) and a setup header."""
    sector = bytearray(pseudo_random(512, seed=3))
    sector[0x10] = 0  # not a FAT boot record
    sector[510:512] = b"\x55\xaa"
    return bytes(sector) + patch(pseudo_random(255 * 1024, seed=4), 2, b"HdrS")
