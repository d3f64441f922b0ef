"""Read a subunit v2 stream (Tempest's results) on stdin; print one JSON line per test.

Runs with the Tempest virtualenv's Python (which has python-subunit and testtools): each line
is ``{"id": ..., "status": "success" | "fail" | "skip" | ..., "reason": ..., "details": ...}``
with the test id stripped of its ``[id-...]`` attributes.
"""
import json
import re
import sys

import subunit
import testtools


def emit(test):
    """Print one finished test."""
    if test["id"].startswith("setUpClass") or test["id"].startswith("tearDownClass"):
        test_id = test["id"]  # a class-level failure: "setUpClass (tempest.api....Class)"
    else:
        test_id = re.sub(r"\[.*\]$", "", test["id"])
    details = {name: content.as_text() for name, content in test["details"].items()}
    reason = details.pop("reason", "")
    print(json.dumps({"id": test_id, "status": test["status"], "reason": reason,
                      "details": "\n".join(details.values())[-3000:]}))


def main():
    stream = subunit.ByteStreamToStreamResult(sys.stdin.buffer, non_subunit_name="stdout")
    result = testtools.StreamToDict(emit)
    result.startTestRun()
    try:
        stream.run(result)
    finally:
        result.stopTestRun()


if __name__ == "__main__":
    main()
