"""Helpers of the image cache's end-to-end tests: servers with a cache in front of SeaweedFS."""
from __future__ import annotations

import os
import time

import requests

from tests.e2e import streams
from tests.e2e.server import Server
from tests.faults.helpers import create, put

MIB = streams.MIB


def cache_server(root, seaweedfs, bucket, port, max_bytes=40 * MIB, **env) -> Server:
    """A server whose only store is the bucket reached through ``port``, with a cache."""
    url = seaweedfs.store_url(bucket, "images").replace(str(seaweedfs.s3_port), str(port))
    settings = dict(IMAGEDATA_STORES=f"s3={url}&part_size={5 * MIB}", IMAGEDATA_CACHE_DIR=f"{root}/cache",
                    IMAGEDATA_CACHE_MAX_BYTES=max_bytes, **seaweedfs.env())
    settings.update(env)
    return Server(root, **settings)


def upload(srv, token, size, seed) -> str:
    image_id = create(srv, token)
    response = put(srv, token, image_id, b"".join(streams.chunks(seed, size)))
    assert response.status_code == 204, response.text
    return image_id


def fetch(srv, token, image_id, **headers):
    response = requests.get(f"{srv.url}/v2/images/{image_id}/file", headers={"X-Auth-Token": token, **headers},
                            timeout=60)
    return response.status_code, response.headers, response.content


def cache_dir(srv) -> str:
    return srv.env["IMAGEDATA_CACHE_DIR"]


def wait_cached(srv, image_id, timeout=20.0, root=None) -> None:
    path = os.path.join(root or cache_dir(srv), image_id)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{image_id} was not cached: {srv.log()}"
        time.sleep(0.05)


def listed(srv, admin) -> dict:
    response = requests.get(f"{srv.url}/v2/cache", headers={"X-Auth-Token": admin}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def metric(srv, admin, line_start: str) -> float:
    text = requests.get(f"{srv.url}/metrics", headers={"X-Auth-Token": admin}, timeout=10).text
    found = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start + " ")]
    return sum(found)


def object_key(seaweedfs, bucket, image_id) -> str:
    (key,) = [k for k in seaweedfs.keys(bucket, "images/") if image_id in k]
    return key


