"""Uploads refused before their body is read, through nginx with the deploy site and direct.

Two hosts on one PostgreSQL behind nginx running deploy/nginx/imagedata.conf. Every refusal
(401, 400, 404, 409, 413, 415) of a 4-16 MiB body must reach the client with its own status,
never as nginx's 502, and must not take a host out of nginx's pool. Direct to gunicorn, a
client sending ``Expect: 100-continue`` gets the refusal instead of ``100 Continue`` and
never sends its body; an accepted upload still gets ``100 Continue`` at once.
"""
from __future__ import annotations

import collections
import os
import random
import subprocess
import threading
import uuid

import pytest
import requests

from tests.e2e import streams
from testkit.nginx import SiteProxy
from tests.e2e.server import Server
from tests.faults.helpers import create, put

MIB = streams.MIB
CAP = 3 * MIB  # every body below is larger: a declared size above it is refused early (413)
REFUSALS = 60
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, server_database):
    """Host A and host B (one database, their own file stores) behind nginx."""
    root = tmp_path_factory.mktemp("refusal")
    shared = {"IMAGEDATA_IMAGE_SIZE_CAP": CAP, **server_database("postgresql")}
    hosts = [Server(root / f"host-{name}", IMAGEDATA_HOST_ID=f"host-{name}", **shared).start() for name in "ab"]
    proxy = SiteProxy(root / "nginx", [host.port for host in hosts], str(root / "unused-stores")).start()
    yield hosts, proxy
    proxy.stop()
    for host in hosts:
        host.stop()


@pytest.fixture(scope="module")
def images(cluster):
    """A token, a queued image and an active one (one database: valid on both hosts)."""
    hosts, _ = cluster
    token = hosts[0].token("p1")
    queued = create(hosts[0], token)
    active = create(hosts[0], token)
    assert put(hosts[0], token, active, b"small image").status_code == 204
    return token, queued, active


def cases(token: str, queued: str, active: str) -> list[tuple[int, str, dict]]:
    """(expected status, image id, headers) of each kind of early refusal."""
    octet = {"Content-Type": "application/octet-stream"}
    auth = {"X-Auth-Token": token, **octet}
    return [
        (401, queued, octet),                                           # no token
        (401, queued, {**octet, "X-Auth-Token": "not-a-token"}),        # a bad token
        (400, queued, {**auth, "X-Image-Meta-Store": "nowhere"}),       # an unknown store
        (400, queued, {**auth, "x-openstack-image-size": "many"}),      # a bad size header
        (404, str(uuid.uuid4()), auth),                                 # no such image
        (409, active, auth),                                            # the image has data already
        (413, queued, auth),                                            # declared size above the cap
        (415, queued, {**auth, "Content-Type": "text/plain"}),          # wrong media type
    ]


def body_of(size: int, chunked: bool):
    """A body of ``size`` bytes, with a Content-Length or chunked (a generator)."""
    data = streams.chunks(size, size)
    return data if chunked else b"".join(data)


def refuse_many(url: str, token: str, queued: str, active: str, count: int, threads: int = 6):
    """Send ``count`` refused uploads of 4-16 MiB from ``threads`` clients; returns
    (Counter of (expected, got), bytes offered)."""
    table = cases(token, queued, active)
    results, offered, lock = collections.Counter(), [0], threading.Lock()
    plan = random.Random(28)
    jobs = [(table[i % len(table)], plan.randrange(4 * MIB, 16 * MIB + 1), i % 4 == 3) for i in range(count)]

    def client(mine):
        with requests.Session() as session:
            for (expected, image_id, headers), size, chunked in mine:
                if expected == 413:  # the declared size is above the cap (a chunked body declares it so)
                    headers = {**headers, "x-openstack-image-size": str(size)}
                try:
                    got = session.put(f"{url}/v2/images/{image_id}/file", data=body_of(size, chunked),
                                      headers=headers, timeout=60).status_code
                except requests.RequestException as exc:
                    got = f"{type(exc).__name__}: {exc}"[:200]
                with lock:
                    results[(expected, got)] += 1
                    offered[0] += size

    workers = [threading.Thread(target=client, args=(jobs[n::threads],)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results, offered[0]


def reached(hosts, request_ids) -> list[int]:
    """How many of ``request_ids`` each host's access log shows."""
    found = []
    for host in hosts:
        with open(host.log_path, errors="replace") as f:
            text = f.read()
        found.append(sum(1 for rid in request_ids if f"req={rid} " in text))
    return found


def test_early_refusals_through_nginx_keep_their_status_and_both_hosts(cluster, images):
    hosts, proxy = cluster
    token, queued, active = images
    results, offered = refuse_many(proxy.url, token, queued, active, REFUSALS)
    print(f"{REFUSALS} early refusals, {offered / MIB:.0f} MiB offered:",
          {f"{want}->{got}": n for (want, got), n in sorted(results.items(), key=str)})
    assert sum(results.values()) == REFUSALS
    wrong = {key: n for key, n in results.items() if key[0] != key[1]}
    assert not wrong, f"answers that were not the refusal (expected, got): {wrong}; nginx: {proxy.error_log()}"
    log = proxy.error_log()
    for sign in ("temporarily disabled", "no live upstreams", "Broken pipe", "reset by peer", "upstream prematurely"):
        assert sign not in log, log
    # Both hosts are still in the pool: requests right after reach each of them.
    request_ids = [f"req-after-refusals-{n}" for n in range(8)]
    for rid in request_ids:
        answer = requests.get(f"{proxy.url}/v2/images/{queued}", timeout=10,
                              headers={"X-Auth-Token": token, "X-Openstack-Request-ID": rid})
        assert answer.status_code == 200
    assert all(n >= 2 for n in reached(hosts, request_ids)), reached(hosts, request_ids)


def curl_upload(url: str, path: str, headers: dict) -> tuple[int, int, str]:
    """``curl -T`` with ``Expect: 100-continue``: (status, bytes uploaded, curl's verbose trace)."""
    argv = ["curl", "-sS", "-v", "-T", path, "-o", "/dev/null", "-w", "%{http_code} %{size_upload}",
            "--expect100-timeout", "10", "-H", "Expect: 100-continue"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    done = subprocess.run(argv + [url], capture_output=True, text=True, timeout=60)
    status, uploaded = done.stdout.split()
    return int(status), int(uploaded), done.stderr


def test_expect_100_continue_gets_the_refusal_and_sends_no_body(cluster, images, tmp_path):
    hosts, _ = cluster
    token, queued, active = images
    path = tmp_path / "image.raw"
    with open(path, "wb") as f:
        for part in streams.chunks(3, 16 * MIB):
            f.write(part)
    for expected, image_id, headers in cases(token, queued, active):
        status, uploaded, trace = curl_upload(f"{hosts[0].url}/v2/images/{image_id}/file", str(path), headers)
        assert (status, uploaded) == (expected, 0), trace[-2000:]
        assert "100 Continue" not in trace
    # An upload the server takes gets its 100 Continue when the body is read (curl would
    # otherwise wait out the 10 s expect timeout): with a Content-Length, and chunked.
    for extra in ({}, {"Transfer-Encoding": "chunked"}):
        image_id = create(hosts[1], token)
        small = tmp_path / "small.raw"
        small.write_bytes(os.urandom(2 * MIB))
        status, uploaded, trace = curl_upload(f"{hosts[1].url}/v2/images/{image_id}/file", str(small),
                                              {"X-Auth-Token": token, "Content-Type": "application/octet-stream",
                                               **extra})
        assert status == 204 and uploaded >= 2 * MIB, trace[-2000:]
        assert "HTTP/1.1 100 Continue" in trace
