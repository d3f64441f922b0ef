"""The decision on an upload's bytes: every probe runs, then one set of rules decides.

Glance (``glance/location.py`` with oslo.utils' format inspector) decides the same way:

1. Every format's probe runs on every upload; nothing stops at the first match, and the
   declared ``disk_format`` does not choose which checks run.
2. More than one format matched: a polyglot, refused. The one combination allowed is ISO
   with an MBR/GPT (a hybrid ISO that boots from a disk too); it counts as ISO.
3. The format found must be the one declared. ``raw`` accepts any format (the consumer
   reads the bytes as they are) and its virtual size is the byte count; formats nobody can
   inspect (ami, ari, aki, ploop) accept only data in which no format was found, or only
   an MBR (where Glance refuses: an AMI is a partitioned disk, a kernel has a boot sector).
4. The safety checks of the format found run whatever was declared: a ``raw`` upload whose
   bytes are a qcow2 with a backing file is as dangerous to a consumer that probes formats
   as one declared qcow2. Virtual sizes of 0 are not recorded (Glance stores none).
5. ``container_format`` other than ``bare``: Glance inspects nothing and records no virtual
   size; we do the same, except that bytes which are a disk image failing its safety checks
   are still refused (a consumer that probes the bytes would follow the names in them).
   MBR/GPT sanity checks are skipped there: a compressed or archived payload can carry the
   boot signature by chance.
"""
from __future__ import annotations

from imagedata.errors import UnsupportedMediaType
from imagedata.service.formats import microsoft, others, qemu, vmdk
from imagedata.service.formats.capture import Finding, StreamCapture

PROBES = (qemu.probe_qcow2, qemu.probe_qed, vmdk.probe_vmdk, microsoft.probe_vhd, microsoft.probe_vhdx,
          others.probe_vdi, others.probe_iso, others.probe_gpt, others.probe_luks)
PLANNERS = (microsoft.plan_vhdx,)
INSPECTED_FORMATS = frozenset({"raw", "qcow2", "qed", "vmdk", "vhd", "vhdx", "vdi", "iso", "gpt", "luks"})
MAX_VIRTUAL_SIZE = 2**63 - 1


class FormatSniffer(StreamCapture):
    """Collects the bytes needed to recognise and check a disk format while the upload streams."""

    def __init__(self):
        super().__init__(PLANNERS)

    def findings(self) -> list[Finding]:
        """Every format the data matches (an empty list: none, so raw)."""
        found = []
        for probe in PROBES:
            try:
                finding = probe(self)
            except Exception as exc:  # a malformed header must never become a 500
                finding = Finding(probe.__name__.removeprefix("probe_"), None, f"header could not be parsed ({exc})")
            if finding is not None:
                found.append(finding)
        return found


def check_format(sniffer: FormatSniffer, disk_format: str, container_format: str, size: int) -> int | None:
    """Raise 415 when the data is unsafe or does not match ``disk_format``; return the virtual size."""
    found = sniffer.findings()
    if container_format != "bare":
        # Glance: non-bare containers are not inspected and get no virtual_size.
        unsafe = [f for f in found if f.problem and f.name != "gpt"]
        if unsafe:
            _refuse_unsafe(unsafe[0])
        return None
    finding = _single(found)
    if finding is not None and finding.name == "gpt" and disk_format not in INSPECTED_FORMATS:
        # Glance refuses these ("does not match stream data gpt"), but an AMI is a partitioned
        # raw disk and a kernel's boot sector carries the same signature: both are raw data.
        finding = None
    if finding is None:  # nothing recognised: raw data
        if disk_format not in INSPECTED_FORMATS:
            return None
        if disk_format != "raw":
            _refuse_mismatch(disk_format, "raw")
        return size or None
    if disk_format != finding.name and disk_format != "raw":
        _refuse_mismatch(disk_format, finding.name)
    if finding.problem:
        _refuse_unsafe(finding)
    if finding.virtual_size is not None and finding.virtual_size > MAX_VIRTUAL_SIZE:
        raise UnsupportedMediaType("Image failed safety checks: its header claims an impossible virtual size.")
    if disk_format == "raw":
        return size or None
    return finding.virtual_size or None


def detected_format(sniffer: FormatSniffer, disk_format: str, container_format: str) -> str | None:
    """The disk format found in data that ``check_format`` accepted as ``raw``, if any.

    Such data is stored as raw, as declared (a consumer reads its bytes as they are): a qcow2
    declared raw boots as a disk full of qcow2 metadata. An MBR or GPT is not reported: it is
    the partition table of a raw disk.
    """
    if disk_format != "raw" or container_format != "bare":
        return None
    found = [f for f in sniffer.findings() if f.name != "gpt"]
    return found[0].name if len(found) == 1 else None


def _single(found: list[Finding]) -> Finding | None:
    names = sorted(f.name for f in found)
    if len(found) <= 1:
        return found[0] if found else None
    if names == ["gpt", "iso"]:
        return next(f for f in found if f.name == "iso")
    raise UnsupportedMediaType(f"Image data matches more than one disk format ({', '.join(names)}); "
                               "an image must be exactly one format.")


def _refuse_mismatch(declared: str, detected: str) -> None:
    raise UnsupportedMediaType(f"Image disk_format {declared} does not match stream data {detected}.")


def _refuse_unsafe(finding: Finding) -> None:
    raise UnsupportedMediaType(f"Image failed safety checks: {finding.problem}.")
