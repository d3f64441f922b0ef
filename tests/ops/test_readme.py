"""The README renders: no broken markup, no dangling links (PyPI shows it as the long description)."""
from __future__ import annotations

import io
import os

import docutils.core

from tests.e2e.server import REPO


def test_readme_renders_without_warnings():
    with open(os.path.join(REPO, "README.rst")) as f:
        source = f.read()
    problems = io.StringIO()
    docutils.core.publish_doctree(source, settings_overrides={
        "report_level": 2, "halt_level": 5, "warning_stream": problems})
    assert problems.getvalue() == ""


def test_every_setting_the_service_reads_is_documented():
    import re

    with open(os.path.join(REPO, "README.rst")) as f:
        readme = f.read()
    names = set()
    for path in ("imagedata/config.py", "imagedata/app.py", "gunicorn.conf.py"):
        with open(os.path.join(REPO, path)) as f:
            names |= set(re.findall(r"\"(IMAGEDATA_[A-Z0-9_]+)\"", f.read()))
    replaced = {"IMAGEDATA_WORKERS", "IMAGEDATA_THREADS", "IMAGEDATA_WORKER_TIMEOUT", "IMAGEDATA_GRACEFUL_TIMEOUT",
                "IMAGEDATA_ACCESS_LOG", "IMAGEDATA_FORWARDED_ALLOW_IPS"}
    undocumented = sorted(name for name in names - replaced if f"``{name}``" not in readme)
    assert undocumented == []
