"""Virtualenvs of the real OpenStack services the tests run (Keystone, Glance), built once and cached.

Each service gets its own virtualenv, so its pins never touch the test virtualenv. It is kept
under ``~/.cache/imagedata/<name>-venv-<version>-<hash of the requirements and constraints>``
(or the path of an environment variable), built under a file lock so that two sessions never
build it at once, and marked complete only after its import check passed.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time

INSTALL_TIMEOUT = 900


class ToolSetupError(RuntimeError):
    """A service's virtualenv or state could not be built here."""


def venv_path(name: str, version: str, requirements: tuple[str, ...], constraints: str,
              override_env: str) -> str:
    """Where the virtualenv of ``name`` lives (keyed by version, requirements and constraints)."""
    if os.environ.get(override_env):
        return os.path.abspath(os.environ[override_env])
    with open(constraints, "rb") as f:
        digest = hashlib.sha256(f.read() + " ".join(requirements).encode()).hexdigest()[:10]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(cache, "imagedata", f"{name}-venv-{version}-{digest}")


def ensure_venv(venv: str, requirements: tuple[str, ...], constraints: str, check: str,
                error: type[Exception] = ToolSetupError) -> str:
    """Build the virtualenv at ``venv`` unless a complete one is cached; returns its path.

    ``check`` is Python code run in it before it is marked complete (an import, say).
    """
    marker = os.path.join(venv, ".imagedata-complete")
    if os.path.exists(marker):
        return venv
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it right now
        if os.path.exists(marker):
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        run_tool([sys.executable, "-m", "venv", venv], f"create the virtualenv {venv}", error)
        run_tool([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                  "-c", constraints, *requirements], f"pip install {' '.join(requirements)}", error)
        run_tool([os.path.join(venv, "bin", "python"), "-c", check], f"run {check!r} in {venv}", error)
        with open(marker, "w") as f:
            f.write(f"{' '.join(requirements)} built in {time.monotonic() - started:.0f}s\n")
    return venv


def run_tool(argv, what: str, error: type[Exception] = ToolSetupError, timeout: float = INSTALL_TIMEOUT,
             **kwargs) -> None:
    """Run one set-up step; raise ``error`` with the end of its output if it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise error(f"could not {what}: {exc}") from None
    if done.returncode != 0:
        raise error(f"could not {what} (exit {done.returncode}): {(done.stderr or done.stdout)[-1500:]}")
