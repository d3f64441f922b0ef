"""A newcomer's first hour, as a test: the README's quick start, its commands read from README.rst
and run as they are written, from a copy of the repository in a temporary folder.

Only the port changes (a free one instead of 9292, in both steps). The copy shares the suite's
virtualenv: its ``.venv`` links to the real one's contents with fresh install stamps, so
``make run`` takes it as installed and never installs into it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import requests

from imagedata.cli.quickstart import STEP_TWO
from tests.e2e.server import REPO, free_port
from tests.helpers import skip_or_fail
from tests.literal import literal_block_after, read_doc
from testkit.processes import wait_until_answering

pytestmark = pytest.mark.e2e

README_ADDRESS = "127.0.0.1:9292"
IGNORED = ("var", ".venv", "__pycache__")  # what git ignores and the walk-through makes


def readme_steps() -> tuple[str, str]:
    readme = read_doc("README.rst")
    return literal_block_after(readme, "**1. Start the service**"), literal_block_after(readme, "**2. Upload an image**")


def copy_repository(target) -> None:
    """The repository's files (tracked, and new ones not ignored), as a fresh clone would have them."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = os.path.join(REPO, name)
        if os.path.isfile(source):
            os.makedirs(os.path.join(target, os.path.dirname(name)), exist_ok=True)
            shutil.copy2(source, os.path.join(target, name))
    venv = target / ".venv"
    venv.mkdir()
    for entry in os.listdir(sys.prefix):
        if not entry.startswith("."):
            os.symlink(os.path.join(sys.prefix, entry), venv / entry)
    for stamp in (".installed", ".installed-test"):  # newer than every copied file: nothing to install
        (venv / stamp).touch()


def files_in(root) -> set[str]:
    found = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in IGNORED]
        found |= {os.path.relpath(os.path.join(folder, name), root) for name in files}
    return found


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IMAGEDATA_", "MAKE", "MFLAGS")) and k not in ("GUNICORN_CMD_ARGS",
                                                                            "PROMETHEUS_MULTIPROC_DIR")}
    env.update(extra)
    return env


def test_make_run_prints_the_readmes_second_step():
    _, step_two = readme_steps()
    assert STEP_TWO.format(api=README_ADDRESS) == step_two


def test_the_readme_quick_start_ends_with_an_active_image(tmp_path):
    for tool, package in (("make", "make"), ("curl", "curl"), ("qemu-img", "qemu-utils"), ("git", "git")):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is not installed (Debian package {package}; .ci/run installs it)")
    step_one, step_two = readme_steps()
    assert step_one.count(README_ADDRESS) == 1 and step_two.count(README_ADDRESS) == 1
    address = f"127.0.0.1:{free_port()}"
    repo, work = tmp_path / "imagedata", tmp_path / "tmp"
    work.mkdir()
    copy_repository(repo)
    before = files_in(repo)
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(["bash", "-c", step_one.replace(README_ADDRESS, address)], cwd=repo,
                                  env=clean_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_answering(server, f"http://{address}/versions", 90, "make run", log_path.read_text)
        done = subprocess.run(["bash", "-e", "-c", step_two.replace(README_ADDRESS, address)], cwd=repo,
                              env=clean_env(TMPDIR=str(work)), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "HTTP/1.1 204 No Content" in done.stdout and done.stdout.endswith("same bytes\n"), done.stdout
        shown = json.loads(done.stdout[done.stdout.index("\n{") + 1:done.stdout.rindex("}") + 1])
        assert (shown["status"], shown["disk_format"], shown["virtual_size"]) == ("active", "qcow2", 1 << 30)
        token = subprocess.run([str(repo / ".venv/bin/imagedata"), "token", "create", "--project", "demo"], cwd=repo,
                               env=clean_env(), capture_output=True, text=True, check=True).stdout.split()[-1]
        image = requests.get(f"http://{address}/v2/images/{shown['id']}", headers={"X-Auth-Token": token},
                             timeout=10).json()
        assert image["status"] == "active" and image["stores"] == "local"
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C, as the README says: to make and gunicorn, our group
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    printed = log_path.read_text()
    assert STEP_TWO.format(api=address) in "\n".join(line[2:] for line in printed.splitlines()) + "\n", printed
    # The test files went to the temporary folder; the repository only gained what git ignores (./var).
    assert files_in(repo) == before
    assert "imagedata.db" in os.listdir(repo / "var") and len(list(work.iterdir())) == 1
