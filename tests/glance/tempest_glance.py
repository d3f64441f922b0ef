"""Tempest's image tests against the real Glance 33 behind a real Keystone: the reference for imagedata's run.

Run by hand, from the project's virtualenv (not collected by pytest; several minutes)::

    python -m tests.glance.tempest_glance [--root DIR] [--regex REGEX]

It starts a Keystone 30 (keystone_server.py) and a Glance 33 (glance_server.py) in Keystone
mode: Glance's own Keystone pipeline (keystonemiddleware, then Glance's context filter), a
``[keystone_authtoken]`` section for a ``glance`` service user, Glance's metadata definition files
loaded as a deployment loads them, and Glance in Keystone's catalog under the service type that
tests/keystone/test_tempest.py gives imagedata. Glance offers interoperable import as imagedata's
run does: the same import methods (``TEMPEST_IMPORT_METHODS``: glance-direct and copy-image;
web-download is not offered, so nothing is fetched from the internet) and file stores with the
same ids as the test server's ``IMAGEDATA_STORES`` (the first is the default), plus Glance's
staging store ``os_glance_staging_store``. Tempest then runs with the same tempest.conf,
selection and concurrency as imagedata's pinned run (tempest_run.py, test_tempest.py).

It prints the counts by outcome, each skipped test with Tempest's reason, how the skips differ
from imagedata's pinned ``EXPECTED_SKIPS``, and every failure; it exits 1 if a test failed.
Everything is stopped by pid; ``--root`` keeps the logs and Tempest's workspace.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import tempfile

from imagedata.config import parse_stores
from tests.e2e.server import Server
from tests.glance.glance_server import Glance
from tests.keystone import keystone_server
from tests.keystone.identity import Identity
from tests.keystone.keystone_server import REGION, Keystone, authtoken_section
from tests.keystone.tempest_run import TestResult, Workspace, ensure_tempest_venv, skips_by_class, summary
from tests.keystone.test_tempest import CATALOG_TYPE, CONCURRENCY, EXPECTED_SKIPS, SELECTION, TEMPEST_IMPORT_METHODS
from tests.metadefs.glance_files import glance_metadefs_dir


def imagedata_store_ids(root: str) -> tuple[str, ...]:
    """The store ids of imagedata's Tempest server (``IMAGEDATA_STORES`` of tests/e2e/server.py), in order."""
    return tuple(store.store_id for store in parse_stores(Server(root).env["IMAGEDATA_STORES"]))


def run_against_glance(root: str, regex: str) -> tuple[dict[str, TestResult], float]:
    """Start Keystone and Glance under ``root``, run Tempest, stop both; the results and wall time."""
    tempest_venv = ensure_tempest_venv()
    keystone = Keystone(os.path.join(root, "keystone"), keystone_server.ensure_venv())
    glance = None
    try:
        keystone.setup().start()
        identity = Identity(keystone.auth_url, keystone.admin_password)
        password = secrets.token_hex(12)
        identity.create_user("glance", password, "service", identity.create_project("service"), ["service"])
        glance = Glance(os.path.join(root, "glance"),
                        keystone_authtoken=authtoken_section(keystone.auth_url, "glance", password),
                        stores=imagedata_store_ids(os.path.join(root, "imagedata")),
                        import_methods=tuple(TEMPEST_IMPORT_METHODS.split(",")))
        glance.setup().load_metadefs(glance_metadefs_dir()).start()
        identity.register_image_service(glance.url, REGION, service_type=CATALOG_TYPE)
        workspace = Workspace(os.path.join(root, "tempest"), tempest_venv, keystone.auth_url,
                              keystone.admin_password, REGION, CATALOG_TYPE).write()
        return workspace.run(regex, CONCURRENCY)
    finally:
        if glance is not None:
            glance.stop()
        keystone.stop()


def report(results: dict[str, TestResult], elapsed: float) -> str:
    """The counts and skips, the skips that differ from imagedata's pinned ones, and the failures."""
    lines = [summary(results, elapsed), "Skipped by class (count, reason):"]
    skips = skips_by_class(results)
    lines += [f"  {cls}: {count}, {reason}" for cls, count, reason in sorted(skips)]
    for label, only in (("only here", skips - EXPECTED_SKIPS),
                        ("only in imagedata's pinned run", EXPECTED_SKIPS - skips)):
        lines += [f"Skips {label}:"] + [f"  {cls}: {count}, {reason}" for cls, count, reason in sorted(only)]
    failed = sorted(test_id for test_id, result in results.items() if result.status not in ("success", "skip"))
    lines += [f"FAILED {test_id} ({results[test_id].status}):\n{results[test_id].details}" for test_id in failed]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", help="keep Keystone's, Glance's and Tempest's folders here (default: removed)")
    parser.add_argument("--regex", default=SELECTION, help=f"the tests to run (default: {SELECTION})")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        root = args.root or stack.enter_context(tempfile.TemporaryDirectory(prefix="tempest-glance-"))
        results, elapsed = run_against_glance(os.path.abspath(root), args.regex)
    print(report(results, elapsed))
    return 1 if any(result.status not in ("success", "skip") for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
