"""Converting an imported image's disk format when the operator asks for it (IMAGEDATA_IMPORT_CONVERT_TO).

The data first lands in a private work folder, checked as an upload is (the size cap, the
quota, the disk-format inspector's safety checks against the declared format). ``qemu-img
convert`` then runs with bounded CPU time, memory and output size, and its output is inspected
again before it becomes the data every store receives. The work folder is removed on every
outcome; a process killed mid-way leaves it to the next start (``clear_work_area``).
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from typing import Callable, Iterable, Iterator

from imagedata.errors import BadRequest, TooLarge, UnsupportedMediaType
from imagedata.service.formats import FormatSniffer, check_format
from imagedata.service.heartbeat import Heartbeat
from imagedata.service.lifecycle import Attempt

log = logging.getLogger(__name__)

# Disk formats qemu-img reads and writes, by Glance's names (a VHD is qemu's "vpc").
QEMU_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx", "vdi": "vdi"}
CPU_SECONDS = 900
MEMORY_BYTES = 2 << 30
WALL_SECONDS = 1800
PIECE = 1 << 20


class ConversionFailed(BadRequest):
    """qemu-img could not convert the image."""


def work_area(data_dir: str) -> str:
    """Where conversions keep their files on this host."""
    return os.path.join(data_dir, "convert")


def clear_work_area(data_dir: str) -> None:
    """Remove what conversions of processes that died left behind (at the server's start)."""
    shutil.rmtree(work_area(data_dir), ignore_errors=True)


def wanted(target: str, image) -> bool:
    """Whether an imported image is converted: a target is set, differs, and both are disk formats."""
    return bool(target) and image.disk_format != target and image.disk_format in QEMU_FORMATS


@contextlib.contextmanager
def converted(data_dir: str, att: Attempt, pieces: Iterable, target: str, heartbeat: Heartbeat,
              progress: Callable[[int], None]) -> Iterator[tuple[str, int | None]]:
    """Land ``pieces`` in a work folder, convert them to ``target``; yields (path of the
    converted file, its virtual size). Everything is removed afterwards."""
    os.makedirs(work_area(data_dir), mode=0o700, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=f"{att.attempt}.", dir=work_area(data_dir))
    try:
        source = os.path.join(folder, "source")
        virtual_size = _land(source, att, pieces, heartbeat, progress)
        if target == "raw" and virtual_size is not None and virtual_size > att.limit:
            raise TooLarge(f"Converted to raw the image would be {virtual_size} bytes, over the image size cap "
                           f"({att.limit} bytes).")
        output = os.path.join(folder, f"converted.{target}")
        _run_qemu_img(source, att.image.disk_format, output, target, att.limit)
        heartbeat.check()
        yield output, _inspect(output, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _land(path: str, att: Attempt, pieces: Iterable, heartbeat: Heartbeat, progress: Callable[[int], None]) -> int | None:
    """Write the source data, with the limits and the safety checks of an upload."""
    sniffer = FormatSniffer()
    total = 0
    with open(path, "wb") as out:
        for data in pieces:
            heartbeat.check()
            total += len(data)
            limit = att.limit if att.quota_limit is None else min(att.limit, att.quota_limit)
            if total > limit:
                raise TooLarge(f"The incoming image is too large: the limit is {limit} bytes (the image size cap "
                               "or the project's quota).")
            sniffer.update(data)
            out.write(data)
            progress(total)
    return check_format(sniffer, att.image.disk_format, att.image.container_format, total)


def _run_qemu_img(source: str, source_format: str, output: str, target: str, limit: int) -> None:
    """qemu-img convert under prlimit: bounded CPU seconds, address space and output size."""
    command = ["prlimit", f"--cpu={CPU_SECONDS}", f"--as={MEMORY_BYTES}", f"--fsize={limit}",
               "qemu-img", "convert", "-q", "-f", QEMU_FORMATS[source_format], "-O", QEMU_FORMATS[target],
               source, output]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=WALL_SECONDS, check=False,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        raise ConversionFailed(f"Converting the image to {target} took longer than {WALL_SECONDS} s.") from None
    except OSError as exc:
        raise ConversionFailed(f"qemu-img could not be run to convert the image ({exc.strerror}).") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout or f"exit status {done.returncode}").strip().splitlines()[-1][:300]
        log.warning("qemu-img convert %s -> %s failed: %s", source_format, target, detail)
        raise ConversionFailed(f"Converting the image from {source_format} to {target} failed: {detail}")


def _inspect(path: str, target: str) -> int | None:
    """The converted file must be what it claims: the inspector runs over it again."""
    sniffer = FormatSniffer()
    size = 0
    with open(path, "rb") as data:
        for piece in iter(lambda: data.read(PIECE), b""):
            sniffer.update(piece)
            size += len(piece)
    try:
        return check_format(sniffer, target, "bare", size)
    except UnsupportedMediaType as exc:
        raise ConversionFailed(f"The converted image failed the disk-format checks: {exc.message}") from None


def file_pieces(path: str) -> Iterator[bytes]:
    """A file's bytes in 1 MiB pieces."""
    with open(path, "rb") as data:
        yield from iter(lambda: data.read(PIECE), b"")
