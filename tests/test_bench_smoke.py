"""The benchmark still runs: `bench/run.py --smoke` (32 MiB) against real nginx and gunicorn.

It fails only on functional problems (wrong bytes, errors), never on slow figures.
CI installs nginx and wrk first (see .ci/run).
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"),
                    reason="nginx is not installed (apt-get install -y nginx wrk); CI installs it")
def test_benchmark_smoke_run(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "bench/run.py", "--smoke", "--venv", os.path.dirname(os.path.dirname(
        sys.executable)), "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "bench: OK" in done.stdout
    report = json.loads(out.read_text())
    assert report, "the benchmark wrote an empty report"
