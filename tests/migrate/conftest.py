"""A real Glance filled with every kind of image, and an imagedata (file stores and an S3 store) to move them to."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.e2e.server import BIN, REPO, Server
from tests.glance.glance_server import Glance, GlanceSetupError
from tests.helpers import skip_or_fail
from tests.migrate.glance_fill import ADMIN, Filler

DB_BACKENDS = ("sqlite",)


@pytest.fixture(scope="module")
def glance(tmp_path_factory):
    """Glance 33 from its cached virtualenv (built on first use), stopped by pid."""
    try:
        server = Glance(tmp_path_factory.mktemp("glance")).setup().start()
    except GlanceSetupError as exc:
        skip_or_fail(f"the real Glance cannot run here: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def filled(glance, tmp_path_factory):
    """Glance holding one image of every kind (tests.migrate.glance_fill)."""
    if shutil.which("qemu-img") is None:
        skip_or_fail("qemu-img (qemu-utils) is needed to make a qcow2 image")
    return Filler(glance, str(tmp_path_factory.mktemp("fill"))).fill()


@pytest.fixture(scope="module")
def target(start_module_server, seaweedfs):
    """The imagedata the images move to: file stores local (default) and slow, and an S3 store."""
    server = start_module_server("imagedata", start=False, **seaweedfs.env())
    server.bucket = seaweedfs.make_bucket("migrated")
    server.env["IMAGEDATA_STORES"] += f",s3={seaweedfs.store_url(server.bucket)}"
    return server.start()


def migrate_argv(glance: Glance, *args: str) -> list[str]:
    """The command line of a migration from ``glance`` as its admin."""
    return [os.path.join(BIN, "imagedata"), "migrate-from-glance", "--glance-url", f"{glance.url}/v2",
            "--glance-token", ADMIN, *args]


def run_migration(server: Server, glance: Glance, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``imagedata migrate-from-glance`` against ``server``'s configuration; whatever its exit code."""
    return subprocess.run(migrate_argv(glance, *args), cwd=REPO, env=server.env, capture_output=True, text=True,
                          timeout=timeout)
