"""What a newcomer reads: the README renders (PyPI shows it), links only to pages that exist,
and the documentation in docs/ builds with Sphinx, warnings as errors, and names every setting."""
from __future__ import annotations

import glob
import io
import os
import re
import subprocess
import sys

import docutils.core

from tests.e2e.server import REPO

README_LINES = 200  # the README is a door, not the house: the reference lives in docs/


def read(path: str) -> str:
    with open(os.path.join(REPO, path)) as f:
        return f.read()


def test_readme_renders_without_warnings():
    problems = io.StringIO()
    docutils.core.publish_doctree(read("README.rst"), settings_overrides={
        "report_level": 2, "halt_level": 5, "warning_stream": problems})
    assert problems.getvalue() == ""


def test_readme_is_short_and_its_links_lead_to_pages():
    readme = read("README.rst")
    assert len(readme.splitlines()) <= README_LINES
    linked = set(re.findall(r"<(docs/[a-z_-]+\.rst)>`_", readme))
    pages = {f"docs/{name}" for name in os.listdir(os.path.join(REPO, "docs")) if name.endswith(".rst")}
    assert linked == pages - {"docs/index.rst"}


def test_every_setting_the_service_reads_is_documented():
    documented = read("docs/configuration.rst")
    names = set()
    for path in (*glob.glob("imagedata/config/*.py", root_dir=REPO), "imagedata/app.py", "gunicorn.conf.py"):
        names |= set(re.findall(r"\"(IMAGEDATA_[A-Z0-9_]+)\"", read(path)))
    replaced = {"IMAGEDATA_WORKERS", "IMAGEDATA_THREADS", "IMAGEDATA_WORKER_TIMEOUT", "IMAGEDATA_GRACEFUL_TIMEOUT",
                "IMAGEDATA_ACCESS_LOG", "IMAGEDATA_FORWARDED_ALLOW_IPS"}
    undocumented = sorted(name for name in names - replaced if f"``{name}``" not in documented)
    assert undocumented == []


def test_the_documentation_builds_without_warnings(tmp_path):
    """The CI build of docs/: Sphinx's html builder, every warning an error."""
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(tmp_path / "doctrees"), os.path.join(REPO, "docs"), str(tmp_path / "html")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "html" / "index.html").exists() and (tmp_path / "html" / "api.html").exists()
