"""Glance's own definition files, for the loader's tests: taken from the Glance package on the registry.

``pip download glance==33.0.0 --no-deps`` fetches the wheel (about 1.5 MB); its data folder holds
``etc/glance/metadefs/*.json``. They are extracted once into ``~/.cache/imagedata`` (with a lock, as
other sessions may do the same) and never copied into the project.
"""
from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

GLANCE_VERSION = "33.0.0"
MEMBER_PREFIX = f"glance-{GLANCE_VERSION}.data/data/etc/glance/metadefs/"
TIMEOUT = 300


class GlanceFilesUnavailable(RuntimeError):
    """The Glance package could not be fetched or read."""


def cache_path() -> str:
    """Where the extracted files live."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(cache, "imagedata", f"glance-{GLANCE_VERSION}-metadefs")


def glance_metadefs_dir() -> str:
    """The folder of Glance's definition files, fetched and extracted on first use."""
    folder = cache_path()
    marker = os.path.join(folder, ".complete")
    if os.path.exists(marker):
        return folder
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(marker):
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        with tempfile.TemporaryDirectory() as download:
            _extract(_download(download), folder)
        with open(marker, "w") as handle:
            handle.write(f"glance=={GLANCE_VERSION} etc/metadefs\n")
    return folder


def _download(folder: str) -> str:
    argv = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
            "--only-binary", ":all:", "-d", folder, f"glance=={GLANCE_VERSION}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GlanceFilesUnavailable(f"could not download glance=={GLANCE_VERSION}: {exc}") from None
    wheels = glob.glob(os.path.join(folder, "glance-*.whl"))
    if done.returncode != 0 or not wheels:
        raise GlanceFilesUnavailable(f"could not download glance=={GLANCE_VERSION} (exit {done.returncode}): "
                                     f"{(done.stderr or done.stdout)[-1000:]}")
    return wheels[0]


def _extract(wheel: str, folder: str) -> None:
    partial = f"{folder}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith(MEMBER_PREFIX) and m.endswith(".json")]
        if not members:
            raise GlanceFilesUnavailable(f"{os.path.basename(wheel)} holds no {MEMBER_PREFIX}*.json")
        for member in members:
            with archive.open(member) as source, open(os.path.join(partial, os.path.basename(member)), "wb") as out:
                shutil.copyfileobj(source, out)
    os.rename(partial, folder)
