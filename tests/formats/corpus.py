"""The disk-image corpus: real images made by qemu-img and xorriso, and hostile files made with struct.

``build(root)`` writes every file under ``root`` and returns the cases: one file may be
uploaded under several declared formats (a hostile qcow2 declared ``qcow2`` and ``raw``).
Virtual sizes stay small (at most 64 MiB) and files are sparse, so the whole corpus builds
in a few seconds. Hostile files name ``/etc/passwd`` or ``neighbour.raw`` (a file next to
them, standing for another tenant's image in the same store directory); ``SECRET`` marks
the neighbour's bytes so a leak can be seen in ``qemu-img convert`` output.
"""
from __future__ import annotations

import dataclasses
import io
import struct
import subprocess
import tarfile
import uuid
from pathlib import Path

from tests.formats import craft

SECRET = b"NEIGHBOUR-SECRET\n"
MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Case:
    """One upload: a file of the corpus with the formats it is declared as."""

    name: str
    file: str
    disk_format: str
    container_format: str = "bare"
    hostile: bool = False

    def path(self, root: Path) -> Path:
        """Where the case's file is."""
        return Path(root) / self.file


def qemu_img(*args: str) -> None:
    """Run qemu-img (never with a path outside the corpus as an output)."""
    done = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"qemu-img {' '.join(args)}: {done.stderr.strip()}"


def build(root: Path) -> list[Case]:
    """Write the corpus under ``root``; return its cases."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "neighbour.raw").write_bytes(SECRET * 4096)
    encrypted = _start_encrypted(root)  # qemu-img spends seconds timing LUKS key derivation: run it meanwhile
    cases: list[Case] = []
    for builder in (_raw, _qcow2, _qemu_legacy, _vmdk, _microsoft, _others, _iso, _hostile_qcow2,
                    _hostile_vmdk, _polyglots, _partition_tables, _containers):
        cases += builder(root)
    _finish_encrypted(root, encrypted)
    craft.luks_from_qcow2(root / "qcow2-luks.qcow2", root / "luks.luks", MIB)
    cases += _cases("qcow2-luks.qcow2", "qcow2") + _cases("luks.luks", "raw", "qcow2") + _hostile_others(root)
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


def _cases(file: str, *formats: str, hostile: bool = False, container: str = "bare") -> list[Case]:
    stem = file.rsplit(".", 1)[0]
    return [Case(stem if i == 0 else f"{stem} as {fmt}", file, fmt, container, hostile)
            for i, fmt in enumerate(formats)]


def _raw(root: Path) -> list[Case]:
    with open(root / "raw-sparse.raw", "wb") as f:
        f.truncate(16 * MIB)
    (root / "raw-random.raw").write_bytes(craft.pseudo_random(256 * 1024, seed=1))
    (root / "raw-empty.raw").write_bytes(b"")
    text = b"Plain text that mentions createType in passing is not a descriptor.\n" * 10
    (root / "raw-text.raw").write_bytes(text)
    (root / "raw-text-latin1.raw").write_bytes(text + "Café\n".encode("latin-1"))
    return (_cases("raw-sparse.raw", "raw") + _cases("raw-random.raw", "raw", "qcow2")
            + _cases("raw-empty.raw", "raw", "qcow2") + _cases("raw-text.raw", "raw")
            + _cases("raw-text-latin1.raw", "raw"))


def _qcow2(root: Path) -> list[Case]:
    out = []
    for name, options, size in (("qcow2-plain", [], "64M"), ("qcow2-v2", ["-o", "compat=0.10"], "64M"),
                                ("qcow2-lazy-refcounts", ["-o", "lazy_refcounts=on"], "64M"),
                                ("qcow2-extended-l2", ["-o", "extended_l2=on,cluster_size=128k"], "64M"),
                                ("qcow2-zstd", ["-o", "compression_type=zstd"], "16M")):
        qemu_img("create", "-q", "-f", "qcow2", *options, str(root / f"{name}.qcow2"), size)
    (root / "seed.raw").write_bytes(craft.pseudo_random(MIB, seed=2) + bytes(MIB))
    qemu_img("convert", "-c", "-O", "qcow2", str(root / "seed.raw"), str(root / "qcow2-compressed.qcow2"))
    qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw",
             str(root / "qcow2-backing-format.qcow2"), "1M")
    craft.qcow2_drop_extension(root / "qcow2-backing-format.qcow2", root / "qcow2-backing-file.qcow2",
                               craft.QCOW2_EXT_BACKING_FORMAT)
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={root / 'qcow2-data-file.data'}",
             str(root / "qcow2-data-file.qcow2"), "1M")
    craft.qcow2_set_data_file(root / "qcow2-data-file.qcow2", "/etc/passwd")
    out += _cases("qcow2-plain.qcow2", "qcow2", "raw", "vmdk", "ami")
    for name in ("qcow2-v2", "qcow2-lazy-refcounts", "qcow2-extended-l2", "qcow2-zstd", "qcow2-compressed"):
        out += _cases(f"{name}.qcow2", "qcow2")
    for name in ("qcow2-backing-format", "qcow2-backing-file", "qcow2-data-file"):
        out += _cases(f"{name}.qcow2", "qcow2", "raw", hostile=True)
    return out


def _qemu_legacy(root: Path) -> list[Case]:
    qemu_img("create", "-q", "-f", "qcow", str(root / "qcow-v1.qcow"), "16M")
    qemu_img("create", "-q", "-f", "qcow", "-b", "/etc/passwd", "-F", "raw", str(root / "qcow-v1-backing.qcow"), "1M")
    qemu_img("create", "-q", "-f", "qed", str(root / "qed.qed"), "16M")
    qemu_img("create", "-q", "-f", "qed", "-b", "/etc/passwd", "-F", "raw", str(root / "qed-backing.qed"), "1M")
    return (_cases("qcow-v1.qcow", "qcow2", "raw") + _cases("qcow-v1-backing.qcow", "raw", hostile=True)
            + _cases("qed.qed", "raw") + _cases("qed-backing.qed", "raw", hostile=True))


def _vmdk(root: Path) -> list[Case]:
    for kind in ("monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse"):
        qemu_img("create", "-q", "-f", "vmdk", "-o", f"subformat={kind}", str(root / f"vmdk-{kind}.vmdk"), "16M")
    qemu_img("convert", "-O", "vmdk", "-o", "subformat=streamOptimized", str(root / "seed.raw"),
             str(root / "vmdk-streamOptimized.vmdk"))
    return (_cases("vmdk-monolithicSparse.vmdk", "vmdk", "raw", "qcow2")
            + _cases("vmdk-streamOptimized.vmdk", "vmdk")
            + _cases("vmdk-monolithicFlat.vmdk", "vmdk", "raw")
            + _cases("vmdk-twoGbMaxExtentSparse.vmdk", "vmdk")
            + _cases("vmdk-twoGbMaxExtentSparse-s001.vmdk", "vmdk"))


def _microsoft(root: Path) -> list[Case]:
    qemu_img("create", "-q", "-f", "vpc", str(root / "vpc-dynamic.vhd"), "16M")
    qemu_img("create", "-q", "-f", "vpc", "-o", "subformat=fixed", str(root / "vpc-fixed.vhd"), "16M")
    qemu_img("create", "-q", "-f", "vhdx", str(root / "vhdx.vhdx"), "16M")
    return (_cases("vpc-dynamic.vhd", "vhd", "raw") + _cases("vpc-fixed.vhd", "vhd", "raw")
            + _cases("vhdx.vhdx", "vhdx", "raw"))


def _start_encrypted(root: Path) -> subprocess.Popen:
    args = ["--object", "secret,id=s0,data=corpus",
            "-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10"]
    return subprocess.Popen(["qemu-img", "create", "-q", "-f", "qcow2", *args, str(root / "qcow2-luks.qcow2"),
                             "16M"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish_encrypted(root: Path, encrypted: subprocess.Popen, attempts: int = 3) -> None:
    """Wait for the LUKS image; start it again when qemu-img's key-derivation timing failed.

    qemu-img before 9.2.1 benchmarks LUKS key derivation on the thread's CPU time and can
    give up with a bogus "Unable to get accurate CPU usage" on a fast machine (qemu's fix:
    "crypto: fix bogus error benchmarking pbkdf on fast machines"); seen once in CI here
    (Debian's 7.2). Any other failure fails at once.
    """
    for attempt in range(attempts):
        _, err = encrypted.communicate(timeout=120)
        if encrypted.returncode == 0:
            return
        if b"accurate CPU usage" not in err or attempt == attempts - 1:
            raise AssertionError(err)
        encrypted = _start_encrypted(root)


def _others(root: Path) -> list[Case]:
    qemu_img("create", "-q", "-f", "vdi", str(root / "vdi.vdi"), "16M")
    return _cases("vdi.vdi", "vdi")


def _iso(root: Path) -> list[Case]:
    content = root / "iso-content"
    content.mkdir(exist_ok=True)
    (content / "readme.txt").write_text("corpus\n")
    (root / "efi.img").write_bytes(bytes(64 * 1024))
    for name, options in (("iso-plain", []), ("iso-mbr", ["--protective-msdos-label"]),
                          ("iso-gpt", ["-append_partition", "2", "0xef", str(root / "efi.img"),
                                       "-appended_part_as_gpt"])):
        subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "CORPUS", "-o", str(root / f"{name}.iso"),
                        *options, str(content)], check=True, capture_output=True, timeout=60)
    return _cases("iso-plain.iso", "iso", "raw", "qcow2") + _cases("iso-mbr.iso", "iso") + _cases("iso-gpt.iso", "iso")


def _containers(root: Path) -> list[Case]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in ("vmdk-streamOptimized.vmdk",):
            tar.add(root / member, arcname="disk1.vmdk")
        descriptor = b"<?xml version='1.0'?><Envelope/>\n"
        info = tarfile.TarInfo("corpus.ovf")
        info.size = len(descriptor)
        tar.addfile(info, io.BytesIO(descriptor))
    (root / "container.ova").write_bytes(buffer.getvalue())
    return [Case("ova-archive", "container.ova", "vmdk", "ova"),
            Case("qcow2-plain in ovf", "qcow2-plain.qcow2", "qcow2", "ovf"),
            Case("qcow2-backing-format in ovf", "qcow2-backing-format.qcow2", "qcow2", "ovf", hostile=True),
            Case("vmdk-parent-hint in docker", "vmdk-parent-hint.vmdk", "raw", "docker", hostile=True),
            Case("mbr-bad-boot-flag in compressed", "mbr-bad-boot-flag.raw", "raw", "compressed")]


def _hostile_qcow2(root: Path) -> list[Case]:
    plain = (root / "qcow2-plain.qcow2").read_bytes()
    files = {
        "qcow2-data-file-bit": craft.qcow2_incompatible(plain, 1 << 2),
        "qcow2-unknown-feature": craft.qcow2_incompatible(plain, 1 << 5),
        "qcow2-unknown-feature-63": craft.qcow2_incompatible(plain, 1 << 63),
        "qcow2-version-4": craft.patch(plain, 4, struct.pack(">I", 4)),
        "qcow2-truncated": plain[:100],
        "qcow2-absurd-size": craft.patch(plain, 24, struct.pack(">Q", 2**64 - 512)),
        "qcow2-bad-cluster-bits": craft.patch(plain, 20, struct.pack(">I", 40)),
    }
    for name, data in files.items():
        (root / f"{name}.qcow2").write_bytes(data)
    craft.qcow2_add_extension(root / "qcow2-plain.qcow2", root / "qcow2-backing-format-only.qcow2",
                              craft.QCOW2_EXT_BACKING_FORMAT, b"raw")
    craft.qcow2_add_extension(root / "qcow2-plain.qcow2", root / "qcow2-data-file-name-only.qcow2",
                              craft.QCOW2_EXT_DATA_FILE, b"/etc/passwd")
    out = []
    for name in (*files, "qcow2-backing-format-only", "qcow2-data-file-name-only"):
        out += _cases(f"{name}.qcow2", "qcow2", hostile=True)
    return out + [
        Case("qcow2-truncated as raw", "qcow2-truncated.qcow2", "raw", hostile=True),
        Case("qcow2-unknown-feature as raw", "qcow2-unknown-feature.qcow2", "raw", hostile=True),
        Case("qcow2-absurd-size as raw", "qcow2-absurd-size.qcow2", "raw", hostile=True)]


def _hostile_vmdk(root: Path) -> list[Case]:
    base = (root / "vmdk-monolithicSparse.vmdk").read_bytes()
    sparse = craft.VmdkSparse(base)
    files = {
        "vmdk-parent-hint": sparse.with_descriptor(craft.vmdk_descriptor(extra=['parentFileNameHint="/etc/passwd"'])),
        "vmdk-parent-hint-comment": sparse.with_descriptor(craft.vmdk_descriptor(
            extra=['# parentFileNameHint="/etc/passwd"'])),
        "vmdk-parent-cid": sparse.with_descriptor(craft.vmdk_descriptor(parent_cid="12345678")),
        "vmdk-extent-path": sparse.with_descriptor(craft.vmdk_descriptor(
            extents=['RW 32768 SPARSE "x.vmdk"', 'RW 2048 FLAT "/etc/passwd" 0'])),
        "vmdk-extra-extent": sparse.with_descriptor(craft.vmdk_descriptor(
            extents=['RW 32768 SPARSE "x.vmdk"', 'RW 2048 FLAT "neighbour.raw" 0'])),
        "vmdk-flat-type": sparse.with_descriptor(craft.vmdk_descriptor(create_type="monolithicFlat",
                                                                       extents=['RW 2048 FLAT "neighbour.raw" 0'])),
        "vmdk-capacity-0-passwd": sparse.with_descriptor(craft.vmdk_descriptor(
            create_type="monolithicFlat", extents=['RW 2048 FLAT "/etc/passwd" 0']), capacity=0),
        "vmdk-capacity-0-neighbour": sparse.with_descriptor(craft.vmdk_descriptor(
            create_type="monolithicFlat", extents=['RW 2048 FLAT "neighbour.raw" 0']), capacity=0),
        "vmdk-capacity-0-sparse-type": sparse.with_descriptor(craft.vmdk_descriptor(
            extents=['RW 2048 FLAT "neighbour.raw" 0']), capacity=0),
        "vmdk-descriptor-moved": sparse.with_descriptor(craft.vmdk_descriptor(
            extra=['parentFileNameHint="/etc/passwd"']), desc_sector=30),
        "vmdk-junk-line": sparse.with_descriptor(craft.vmdk_descriptor(extra=["this is not a field"])),
        "vmdk-version-4": craft.patch(base, 4, struct.pack("<I", 4)),
        "vmdk-absurd-capacity": craft.patch(base, 12, struct.pack("<Q", 2**60)),
        "vmdk-truncated": base[:300],
        "vmdk-truncated-descriptor": base[:4096],
        "vmdk-cowd": b"COWD" + struct.pack("<II", 1, 3) + bytes(2036),
        "vmdk-stream-footer": craft.vmdk_stream_footer((root / "vmdk-streamOptimized.vmdk").read_bytes()),
        "vmdk-stream-footer-mismatch": craft.vmdk_stream_footer(
            (root / "vmdk-streamOptimized.vmdk").read_bytes(), footer_desc_sectors=40),
    }
    for name, data in files.items():
        (root / f"{name}.vmdk").write_bytes(data)
    (root / "vmdk-descriptor-passwd.vmdk").write_text(craft.vmdk_descriptor(
        create_type="monolithicFlat", extents=['RW 2048 FLAT "/etc/passwd" 0']))
    (root / "vmdk-descriptor-sparse-type.vmdk").write_text(craft.vmdk_descriptor(
        extents=['RW 32768 SPARSE "vmdk-monolithicSparse.vmdk"']))
    out = []
    for name in files:
        out += _cases(f"{name}.vmdk", "vmdk", hostile=True)
    for name in ("vmdk-parent-hint", "vmdk-descriptor-moved", "vmdk-capacity-0-passwd", "vmdk-cowd",
                 "vmdk-truncated", "vmdk-descriptor-passwd"):
        out.append(Case(f"{name} as raw", f"{name}.vmdk", "raw", hostile=True))
    return out + _cases("vmdk-descriptor-passwd.vmdk", "vmdk", hostile=True) + _cases(
        "vmdk-descriptor-sparse-type.vmdk", "vmdk", hostile=True)


def _hostile_others(root: Path) -> list[Case]:
    dynamic = (root / "vpc-dynamic.vhd").read_bytes()
    vdi = (root / "vdi.vdi").read_bytes()
    vhdx = (root / "vhdx.vhdx").read_bytes()
    luks = (root / "luks.luks").read_bytes()
    files = {
        "vhd-differencing.vhd": craft.vhd_patch(dynamic, disk_type=4),
        "vhd-absurd-size.vhd": craft.vhd_patch(dynamic, current_size=2**64 - 512),
        "vhdx-has-parent.vhdx": craft.vhdx_file_parameters(vhdx, flags=0x2),
        "vhdx-log-pending.vhdx": craft.vhdx_log_guid(vhdx, uuid.UUID(int=1).bytes_le),
        "vhdx-truncated.vhdx": vhdx[:100 * 1024],
        "vdi-differencing.vdi": craft.patch(vdi, 0x4C, struct.pack("<I", 4)),
        "vdi-parent-uuid.vdi": craft.patch(vdi, 0x1B8, uuid.UUID(int=7).bytes),
        "vdi-absurd-size.vdi": craft.patch(vdi, 0x170, struct.pack("<Q", 2**64 - 512)),
        "luks-v2.luks": craft.patch(luks, 6, struct.pack(">H", 2)),
    }
    out = []
    for file, data in files.items():
        (root / file).write_bytes(data)
        fmt = {"vhd": "vhd", "vhdx": "vhdx", "vdi": "vdi", "luks": "raw"}[file.rsplit(".", 1)[1]]
        out += _cases(file, fmt, hostile=True)
    return out + [Case("vhd-differencing as raw", "vhd-differencing.vhd", "raw", hostile=True)]


def _polyglots(root: Path) -> list[Case]:
    iso = (root / "iso-plain.iso").read_bytes()
    backing = (root / "qcow2-backing-format.qcow2").read_bytes()
    plain = (root / "qcow2-plain.qcow2").read_bytes()
    sparse = (root / "vmdk-monolithicSparse.vmdk").read_bytes()
    fixed_footer = (root / "vpc-fixed.vhd").read_bytes()[-512:]
    files = {
        "polyglot-iso-qcow2.iso": backing[:32 * 1024] + iso[32 * 1024:],
        "polyglot-qcow2-gpt.qcow2": craft.with_protective_mbr(plain),
        "polyglot-vmdk-gpt.vmdk": craft.with_protective_mbr(sparse),
        "polyglot-vmdk-vdi.vmdk": craft.patch(sparse, 0x40, struct.pack("<I", 0xBEDA107F)),
        "polyglot-qcow2-vhd.qcow2": plain + fixed_footer,
    }
    out = []
    for file, data in files.items():
        (root / file).write_bytes(data)
    out += _cases("polyglot-iso-qcow2.iso", "iso", "qcow2", "raw", hostile=True)
    out += _cases("polyglot-qcow2-gpt.qcow2", "qcow2", "raw", hostile=True)
    out += _cases("polyglot-vmdk-gpt.vmdk", "vmdk", hostile=True)
    out += _cases("polyglot-vmdk-vdi.vmdk", "vmdk", "vdi", hostile=True)
    out += _cases("polyglot-qcow2-vhd.qcow2", "qcow2", "vhd", hostile=True)
    return out


def _partition_tables(root: Path) -> list[Case]:
    disk = bytes(MIB)
    files = {
        "gpt-disk.raw": craft.with_protective_mbr(disk, gpt_header=True),
        "mbr-disk.raw": craft.with_mbr(disk, [(0x80, 0x83, 2048, 0)]),
        "mbr-bad-boot-flag.raw": craft.with_mbr(disk, [(0x7F, 0x83, 2048, 0)]),
        "mbr-no-partitions.raw": craft.with_mbr(disk, []),
        "gpt-extra-partition.raw": craft.with_mbr(disk, [(0, 0xEE, 1, 0), (0, 0x83, 4096, 1)]),
        "gpt-bad-start.raw": craft.with_mbr(disk, [(0, 0xEE, 2, 0)]),
        "fat-boot-record.raw": craft.fat_boot_record(disk),
        "kernel-boot-sector.raw": craft.kernel_like(),
    }
    out = []
    for file, data in files.items():
        (root / file).write_bytes(data)
        out += _cases(file, "raw", hostile=file.startswith(("mbr-bad", "mbr-no", "gpt-extra", "gpt-bad")))
    out += [Case("mbr-disk as ami", "mbr-disk.raw", "ami"), Case("raw-random as aki", "raw-random.raw", "aki"),
            Case("kernel-boot-sector as aki", "kernel-boot-sector.raw", "aki")]
    return out
