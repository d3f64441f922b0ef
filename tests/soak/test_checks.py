"""The soak's judgement of what its clients found, without running a soak."""
from __future__ import annotations

from tests.soak.checks import Verdict, check_findings
from tests.soak.run import Soak, Window
from tests.soak.traffic import Recorder


def judged(findings) -> Verdict:
    recorder = Recorder()
    recorder.findings = findings
    soak = Soak(120, recorder, sampler=None, probes=None, windows=[Window("postgres", "restart", 91.3, 96.5)])
    verdict = Verdict()
    check_findings(soak, verdict)
    return verdict


def test_a_missing_offset_after_a_cut_that_met_a_fault_is_excused_and_reported():
    """The cut upload began at 93 s, inside the database restart: the server's 503 (which the
    client never read) kept nothing. The finding is made 10 s later, after its polls."""
    verdict = judged([(93.0, 103.5, "no offset", "image X: no Upload-Offset after a cut at 12234508 bytes")])
    assert verdict.problems == []
    assert verdict.figures["findings in fault windows"] == [
        "no offset (postgres window, 93.0-103.5s): image X: no Upload-Offset after a cut at 12234508 bytes"]


def test_a_missing_offset_outside_any_fault_is_a_problem():
    verdict = judged([(100.0, 110.0, "no offset", "image Y: no Upload-Offset after a cut at 1 bytes")])
    assert verdict.problems == ["no offset at 110.0s: image Y: no Upload-Offset after a cut at 1 bytes"]


def test_wrong_bytes_are_never_excused_by_a_fault():
    verdict = judged([(94.0, 94.0, "wrong bytes", "image Z: byte 7 differs")])
    assert verdict.problems == ["wrong bytes at 94.0s: image Z: byte 7 differs"]
