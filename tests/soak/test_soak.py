"""The soak: two hosts on one PostgreSQL and one SeaweedFS bucket behind nginx with the deploy
site, mixed traffic from six clients while one host is SIGKILLed and restarted, the other
reloaded (SIGHUP), SeaweedFS stopped for 5 s and PostgreSQL restarted; then, after the lease
and ``imagedata recover``, the checks of tests/soak/checks.py.

Two minutes with ``make soak`` (a step of .ci/run after the suite: ``--run-soak``); eight with
``--run-soak --run-slow``. The report (printed, and kept as
``soak-report.txt`` in the cluster's folder; set IMAGEDATA_SOAK_DIR to keep it and the logs) counts statuses per operation and per fault window
and says what each fault looked like to a client streaming through it.
"""
from __future__ import annotations

import json
import os

import pytest

from tests.soak.checks import judge
from tests.soak.report import render
from tests.soak.run import run_soak

pytestmark = [pytest.mark.e2e, pytest.mark.soak]


def soak_and_judge(cluster, seconds: float) -> tuple[list[str], str]:
    """Run the soak, save and print its report; (the problems found, the report)."""
    soak = run_soak(cluster, seconds)
    verdict = judge(cluster, soak)
    text = render(soak, verdict)
    with open(os.path.join(cluster.root, "soak-report.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(cluster.root, "worker-samples.json"), "w") as f:  # (t, host, pid, RSS KiB, fds)
        json.dump(soak.sampler.workers, f)
    print(text)
    return verdict.problems, text


def test_soak_two_minutes(cluster):
    problems, report = soak_and_judge(cluster, 120)
    assert problems == [], report


@pytest.mark.slow
def test_soak_eight_minutes(cluster):
    problems, report = soak_and_judge(cluster, 480)
    assert problems == [], report
