"""VMware VMDK: only single-file sparse images (monolithicSparse, streamOptimized) are safe.

A VMDK descriptor names the files that hold the disk's data (extents) and, for a delta
disk, its parent. A hypervisor opens whatever those names say, so:

- a text descriptor file is always refused: it exists to name other files;
- a sparse image's embedded descriptor must declare monolithicSparse or streamOptimized,
  exactly one SPARSE extent with a plain file name, no parent (``parentFileNameHint``
  anywhere in the text, comments included, as qemu searches the raw text for it; a
  ``parentCID`` other than ffffffff), and no line this code does not understand;
- the sparse header must put the descriptor at sector 1 and claim a capacity above
  zero: qemu reads the embedded descriptor of a zero-capacity header as a full descriptor
  file, extents and all;
- a stream-optimized image whose grain directory is "at the end" must end with a footer
  that repeats the header and an end-of-stream marker.
Layout: VMware's "Virtual Disk Format 1.1" and qemu's block/vmdk.c.
"""
from __future__ import annotations

import re

from imagedata.service.formats.capture import Capture, Finding, u32le, u64le

SPARSE_MAGIC = b"KDMV"
COWD_MAGIC = b"COWD"
GD_AT_END = 0xFFFFFFFFFFFFFFFF
SAFE_CREATE_TYPES = ("monolithicsparse", "streamoptimized")
DESCRIPTOR_LIMIT = 64 * 1024
MARKER_FOOTER = 3
MARKER_EOS = 0
CREATE_TYPE = re.compile(rb'createType\s*=\s*"([^"\n]{0,64})', re.IGNORECASE)


def probe_vmdk(cap: Capture) -> Finding | None:
    """A sparse VMDK (KDMV header), a VMware 3 COWD image, or a text descriptor file."""
    head = cap.head
    if head[:4] == SPARSE_MAGIC:
        return _sparse(cap)
    if head[:4] == COWD_MAGIC:
        return Finding("vmdk", None, "VMware 3 (COWD) images are not supported")
    create_type = _descriptor_file_type(head)
    if create_type is not None:
        return Finding("vmdk", None, f"VMDK descriptor files name other files (createType {create_type!r})")
    return None


def _sparse(cap: Capture) -> Finding:
    head = cap.head
    if cap.size < 512:
        return Finding("vmdk", None, "truncated VMDK sparse header")
    version, capacity = u32le(head, 4), u64le(head, 12)
    desc_sector, desc_sectors, gd_offset = u64le(head, 28), u64le(head, 36), u64le(head, 56)
    virtual_size = capacity * 512
    if version not in (1, 2, 3):
        return Finding("vmdk", virtual_size, f"unsupported VMDK version {version}")
    if capacity == 0:
        return Finding("vmdk", None, "VMDK sparse header claims a capacity of 0")
    if desc_sector != 1 or desc_sectors == 0:
        return Finding("vmdk", virtual_size, "VMDK embedded descriptor is not where a single-file image keeps it")
    if cap.size < (1 + min(desc_sectors, DESCRIPTOR_LIMIT // 512)) * 512:
        return Finding("vmdk", virtual_size, "truncated VMDK embedded descriptor")
    problem = descriptor_problem(_embedded_text(head, desc_sectors))
    if problem is None and gd_offset == GD_AT_END:
        problem = _footer_problem(cap)
    return Finding("vmdk", virtual_size, problem)


def _embedded_text(head: bytes, desc_sectors: int) -> bytes | None:
    """The descriptor text up to its NUL padding; None when it does not fit the kept bytes."""
    # qemu reads at least 10 KiB from sector 1 when it looks for a parent, whatever the size field says.
    length = min(max(desc_sectors * 512, 10240), DESCRIPTOR_LIMIT)
    raw = bytes(head[512:512 + length])
    end = raw.find(b"\0")
    if end < 0 and (desc_sectors * 512 > DESCRIPTOR_LIMIT or len(raw) < length):
        return None
    return raw if end < 0 else raw[:end]


def descriptor_problem(text: bytes | None) -> str | None:
    """Why an embedded descriptor is unsafe, or None when it describes one self-contained sparse file."""
    if text is None:
        return "VMDK embedded descriptor is too large to inspect"  # no NUL within DESCRIPTOR_LIMIT
    try:
        decoded = text.decode("ascii")
    except UnicodeDecodeError:
        return "VMDK embedded descriptor is not ASCII text"
    if "parentfilenamehint" in decoded.lower():
        return "VMDK descriptor names a parent disk"
    fields, extents = {}, []
    for line in (raw.strip() for raw in decoded.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("ddb."):
            continue
        words = line.split()
        if words[0].upper() in ("RW", "RDONLY", "NOACCESS"):
            extents.append(words)
        elif "=" in line and not any(c.isspace() for c in line.split("=", 1)[0]):
            key, value = line.split("=", 1)
            fields[key.strip().lower()] = value.strip().strip('"')
        else:
            return "VMDK descriptor has a line that is neither a field nor an extent"
    create_type = fields.get("createtype", "")
    if create_type.lower() not in SAFE_CREATE_TYPES:
        return f"VMDK createType {create_type[:40]!r} is not a single-file sparse type"
    if fields.get("parentcid", "ffffffff").lower() != "ffffffff":
        return "VMDK descriptor names a parent disk"
    return _extent_problem(extents)


def _extent_problem(extents: list[list[str]]) -> str | None:
    if len(extents) != 1:
        return f"VMDK descriptor lists {len(extents)} extents; a single-file image has exactly one"
    words = extents[0]
    if len(words) < 4 or words[0].upper() not in ("RW", "RDONLY") or words[2].upper() != "SPARSE":
        return "VMDK extent is not a sparse extent in this file"
    name = " ".join(words[3:])
    if "/" in name or "\\" in name or ":" in name:
        return "VMDK extent names a file by path"
    return None


def _footer_problem(cap: Capture) -> str | None:
    """A stream-optimized footer: marker, a copy of the header, end-of-stream marker."""
    tail = cap.tail
    if cap.size < 512 + 1536 or len(tail) < 1536:
        return "VMDK stream footer is missing"
    marker, footer, eos = tail[:512], tail[512:1024], tail[1024:]
    head = cap.head
    if u32le(marker, 8) != 0 or u32le(marker, 12) != MARKER_FOOTER or any(marker[16:]):
        return "VMDK footer marker is invalid"
    if any(eos):
        return "VMDK end-of-stream marker is invalid"
    if footer[:4] != SPARSE_MAGIC or footer[4:8] != head[4:8] or footer[12:20] != head[12:20] \
            or footer[28:44] != head[28:44]:
        return "VMDK footer does not repeat the header"
    if u64le(footer, 56) == GD_AT_END:
        return "VMDK footer points at another footer"
    return None


def _descriptor_file_type(head: bytes) -> str | None:
    """The createType of a text descriptor file (or '' if it has none), None if this is no descriptor."""
    text = bytes(head[:DESCRIPTOR_LIMIT])
    end = text.find(b"\0")
    if end >= 0:
        text = text[:end]
    start = text[:64]
    if not start or any(b < 0x20 and b not in b"\t\n\r\f\v" or b > 0x7E for b in start):
        return None
    found = CREATE_TYPE.search(text)  # anywhere, as qemu's parser and the reference look for it
    if found:
        return found.group(1).decode("ascii", "replace")
    return "" if _qemu_probes_descriptor(text[:2048]) else None


def _qemu_probes_descriptor(text: bytes) -> bool:
    """qemu's probe: comment and blank lines, then ``version=1|2|3`` as the first real line."""
    for line in text.split(b"\n"):
        stripped = line.rstrip(b"\r")
        if stripped.startswith(b"#") or not stripped.strip(b" "):
            continue
        return stripped in (b"version=1", b"version=2", b"version=3")
    return False
