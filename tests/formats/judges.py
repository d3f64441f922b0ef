"""Three views of one upload: our inspector, the reference (Glance's rules on oslo.utils) and qemu-img.

``reference`` follows ``glance/location.py`` (``ImageProxy.set_data``): oslo.utils'
``InspectWrapper`` over the body read in 64 KiB pieces (the filesystem store's write size),
then ISO+GPT counts as ISO, any other multiple match is refused, the detected format must
equal ``disk_format`` (raw accepts anything, uninspectable formats accept raw data), and
the detected format's safety checks run. ``require_image_format_match`` is on (Glance's
default), so every format error is a refusal; non-bare containers are not inspected.

``qemu`` says what a hypervisor would do with the file: ``qemu-img info`` with format
probing and with the declared format, which files beyond the image it opens (backing
file, external data file, VMDK extents), and for hostile files whether
``qemu-img convert -O raw`` copies bytes of ``/etc/passwd`` or of the neighbouring file.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

from oslo_utils.imageutils import format_inspector

from imagedata.errors import UnsupportedMediaType
from imagedata.service.formats import FormatSniffer, check_format
from tests.formats.corpus import SECRET, Case

GLANCE_CHUNK = 64 * 1024
UPLOAD_CHUNK = 1 << 20  # what the service reads per piece (IMAGEDATA_CHUNK_SIZE default)
QEMU_DRIVERS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx", "vdi": "vdi",
                "iso": "raw"}
CONVERT_LIMIT = 64 << 20


@dataclasses.dataclass
class Verdict:
    """Accepted (with the virtual size that would be recorded) or refused (with why)."""

    accepted: bool
    virtual_size: int | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.accepted:
            return f"accept vs={self.virtual_size}"
        return f"refuse: {self.detail}"


def ours(root: Path, case: Case, piece: int = UPLOAD_CHUNK) -> Verdict:
    """What imagedata's inspector decides for the case."""
    sniffer = FormatSniffer()
    size = 0
    with open(case.path(root), "rb") as f:
        for chunk in iter(lambda: f.read(piece), b""):
            sniffer.update(chunk)
            size += len(chunk)
    try:
        return Verdict(True, check_format(sniffer, case.disk_format, case.container_format, size))
    except UnsupportedMediaType as exc:
        return Verdict(False, None, exc.message)


def reference(root: Path, case: Case) -> Verdict:
    """What Glance decides with oslo.utils' format inspector."""
    if case.container_format != "bare":
        return Verdict(True, None, "not inspected (container)")
    with open(case.path(root), "rb") as f:
        wrapper = format_inspector.InspectWrapper(f)
        try:
            while wrapper.read(GLANCE_CHUNK):
                pass
        finally:
            wrapper.close()
    try:
        return _reference_decision(wrapper, case.disk_format)
    except format_inspector.ImageFormatError as exc:
        return Verdict(False, None, str(exc))
    except format_inspector.SafetyCheckFailed as exc:
        return Verdict(False, None, f"safety checks failed: {', '.join(exc.failures)}")
    except Exception as exc:  # Glance: "Image format inspection failed"
        return Verdict(False, None, f"inspection failed: {exc!r}")


def _reference_decision(wrapper, declared: str) -> Verdict:
    matched = {str(i): i for i in wrapper.formats}
    inspector = matched["iso"] if matched.keys() == {"iso", "gpt"} else wrapper.format
    detected = str(inspector)
    if detected == declared:
        virtual_size = inspector.virtual_size
    elif detected == "raw" and declared not in format_inspector.ALL_FORMATS:
        virtual_size = 0
    elif declared == "raw":
        virtual_size = inspector.actual_size
    else:
        return Verdict(False, None, f"disk_format {declared} does not match stream data {detected}")
    inspector.safety_check()
    return Verdict(True, virtual_size or None, detected)


@dataclasses.dataclass
class QemuView:
    """What qemu-img makes of a file: probed format, virtual size, files it reaches, leaks."""

    probed: str | None
    virtual_size: int | None
    declared_size: int | None
    outside: list[str]
    leaked: bool | None
    error: str = ""

    def __str__(self) -> str:
        if self.probed is None:
            text = f"cannot open ({self.error[:60]})"
        else:
            text = f"{self.probed} vs={self.virtual_size}"
        if self.outside:
            text += f"; opens {', '.join(sorted(set(self.outside)))}"
        if self.leaked:
            text += "; convert copies outside bytes"
        return text


def _info(root: Path, file: str, driver: str | None) -> dict | str:
    args = ["qemu-img", "info", "--output=json", *(["-f", driver] if driver else []), file]
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=30)
    if done.returncode:
        return done.stderr.strip().replace(f"qemu-img: Could not open '{file}': ", "")
    return json.loads(done.stdout)


def _outside(info: dict, file: str) -> list[str]:
    names = [info[key] for key in ("backing-filename",) if info.get(key)]
    data = info.get("format-specific", {}).get("data", {})
    if data.get("data-file"):
        names.append(data["data-file"])
    names += [e["filename"] for e in data.get("extents", []) if e.get("filename") not in (file, f"./{file}")]
    return names


def qemu(root: Path, case: Case) -> QemuView:
    """Run qemu-img on the case's file (probing, then as declared) and, for hostile files, convert it."""
    probed = _info(root, case.file, None)
    driver = QEMU_DRIVERS.get(case.disk_format)
    declared = _info(root, case.file, driver) if driver else None
    outside = []
    for info in (probed, declared):
        if isinstance(info, dict):
            outside += _outside(info, case.file)
    view = QemuView(probed["format"] if isinstance(probed, dict) else None,
                    probed["virtual-size"] if isinstance(probed, dict) else None,
                    declared["virtual-size"] if isinstance(declared, dict) else None,
                    outside, None, probed if isinstance(probed, str) else "")
    if case.hostile and isinstance(probed, dict) and probed["virtual-size"] <= CONVERT_LIMIT:
        view.leaked = _convert_leaks(root, case.file)
    return view


def _convert_leaks(root: Path, file: str) -> bool:
    """Whether ``qemu-img convert`` (format probed, as a hypervisor that probes would) copies outside bytes."""
    target = root / "convert.out"
    try:
        done = subprocess.run(["qemu-img", "convert", "-O", "raw", file, str(target)], cwd=root,
                              capture_output=True, timeout=60)
        if done.returncode:
            return False
        output = target.read_bytes()
    finally:
        target.unlink(missing_ok=True)
    passwd = Path("/etc/passwd").read_bytes()[:24]
    return passwd in output or SECRET in output
