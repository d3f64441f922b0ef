"""Fault-injection fixtures: mounts and the closing counts."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.faults.helpers import STATS

COUNT_NAMES = ("kills survived", "races run", "inputs fuzzed", "5xx seen", "orphans found")


def pytest_terminal_summary(terminalreporter):
    if not STATS:
        return
    tr = terminalreporter
    tr.section("fault-injection counts")
    for name in COUNT_NAMES:
        tr.write_line(f"{name}: {STATS.get(name, 0)}")
    for name in sorted(STATS):
        if name not in COUNT_NAMES:
            tr.write_line(f"  {name}: {STATS[name]}")


@pytest.fixture
def mounts():
    """Mount helper; everything mounted is unmounted (lazily if busy) in teardown."""
    done = []

    def mount(*args, target):
        os.makedirs(target, exist_ok=True)
        result = subprocess.run(["mount", *args, target], capture_output=True, text=True)
        if result.returncode != 0:
            return False
        done.append(target)
        return True

    mount.mounted = done
    yield mount
    for target in reversed(done):
        if subprocess.run(["umount", target], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", target], capture_output=True)
