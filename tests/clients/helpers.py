"""Helpers to run the real OpenStack clients (python-glanceclient, openstackclient, openstacksdk) against gunicorn.

Every client command runs from the test virtualenv, with a fresh temporary HOME (glanceclient caches
the image schema under ~/.glanceclient and would reuse another server's), without any OS_* variables,
with stdin closed (both CLIs upload stdin when it is not a TTY) and with a timeout.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest
import requests

BIN = os.path.dirname(sys.executable)
MIB = 1 << 20
DATA_SIZE = 2 * MIB + 300_000   # 3 glanceclient chunks: 1 MiB, 1 MiB and the remainder
CAP = 3 * MIB                   # IMAGEDATA_IMAGE_SIZE_CAP of the servers started here
BIG_SIZE = 4 * MIB              # over the cap: 413
CLIENT_TIMEOUT = 90
NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"
HAVE_SCRIPT = shutil.which("script") is not None


@dataclasses.dataclass
class Result:
    """What a client command printed, and its exit code."""

    argv: list
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (f"$ {shlex.join(self.argv)}\nexit {self.returncode}\n--- stdout\n{self.stdout}\n"
                f"--- stderr\n{self.stderr}")


def run_client(argv, *, workdir, tty=False, check=True, timeout=CLIENT_TIMEOUT) -> Result:
    """Run one client command with a fresh HOME in ``workdir``.

    Without ``tty`` stdin is *closed* (``<&-``): /dev/null is not enough, a non-TTY stdin is uploaded.
    With ``tty`` the command runs under ``script`` so that it sees a terminal (``--progress`` draws
    its bar only then); script merges stderr into stdout.
    """
    os.makedirs(workdir, exist_ok=True)
    home = tempfile.mkdtemp(prefix="home-", dir=workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "IMAGEDATA_"))}
    env.update({"HOME": home, "PYTHONWARNINGS": "ignore", "COLUMNS": "200", "LC_ALL": "C.UTF-8"})
    if tty:
        cmd = ["script", "-qec", shlex.join(argv), "/dev/null"]
        stdin = subprocess.DEVNULL  # script's own stdin; the client's stdin is the pty
    else:
        cmd = ["bash", "-c", 'exec "$@" <&-', argv[0], *argv]
        stdin = None
    done = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, errors="replace",
                          env=env, cwd=home, timeout=timeout)
    result = Result(list(argv), done.returncode, done.stdout.replace("\r", ""), done.stderr)
    if check and result.returncode != 0:
        pytest.fail(f"client command failed:\n{result}")
    return result


def assert_clean_error(result: Result, *needles: str) -> None:
    """The command failed with exit 1 and a message (no traceback), containing every needle."""
    assert result.returncode == 1, str(result)
    assert "Traceback" not in result.output, str(result)
    assert "object has no attribute" not in result.output, str(result)
    for needle in needles:
        assert needle in result.output, f"{needle!r} not in the output of\n{result}"


# ------------------------------------------------------------------ table parsing (cliff / prettytable)

def table_rows(text: str) -> list[list[str]]:
    """The cells of every ``| a | b |`` line of a printed table (header row included)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            rows.append([cell.strip() for cell in line[1:-1].split("|")])
    return rows


def property_table(text: str) -> dict:
    """A two-column ``Property | Value`` (or ``Field | Value``) table as a dict; wrapped values re-joined."""
    props, last = {}, None
    for key, *value in table_rows(text)[1:]:
        value = "|".join(value)
        if key:
            props[key], last = value, key
        elif last is not None:
            props[last] += value
    return props


# ------------------------------------------------------------------ data and server helpers

def make_file(path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    with open(path, "wb") as f:
        f.write(data)
    return data


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def api(server, token):
    """A requests session for direct API calls (setup and checks, not under test)."""
    session = requests.Session()
    session.headers["X-Auth-Token"] = token
    session.base = server.url
    return session


def api_create(session, name, **fields) -> str:
    body = {"name": name, "disk_format": "raw", "container_format": "bare", **fields}
    response = session.post(f"{session.base}/v2/images", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def api_upload(session, image_id, data: bytes) -> None:
    response = session.put(f"{session.base}/v2/images/{image_id}/file", data=data, timeout=30,
                           headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 204, response.text


def api_show(session, image_id) -> requests.Response:
    return session.get(f"{session.base}/v2/images/{image_id}", timeout=10)


def api_names(session) -> list[str]:
    """The names of every image the caller can list (following next)."""
    names, url = [], f"{session.base}/v2/images?limit=1000"
    while url:
        body = session.get(url, timeout=10).json()
        names += [image["name"] for image in body["images"]]
        url = f"{session.base}{body['next']}" if body.get("next") else None
    return names


def store_file(server, image_id) -> str:
    """The one data file of an image in the server's stores."""
    found = [p for p in server.store_files() if os.path.basename(p).startswith(f"{image_id}.")]
    assert len(found) == 1, (image_id, server.store_files())
    return found[0]


def corrupt(path: str, offset: int = 1000) -> None:
    """Flip one byte of a stored file in place (same size, so only a checksum can tell)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def json_output(result: Result):
    return json.loads(result.stdout)
