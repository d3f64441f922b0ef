"""The whole corpus uploaded through a real gunicorn, each file with its declared formats.

One server for the corpus. Every upload ends as the inspector decided (the differential
tests check that decision against the reference and qemu-img): 204 with the right
``virtual_size``, or 415 with the inspector's message, the image back to ``queued`` with no
size, checksum or virtual size, nothing new in the store and the project's usage unchanged.
"""
from __future__ import annotations

import pytest
import requests


pytestmark = pytest.mark.e2e

QUOTA = 1 << 40  # a size quota, so every upload reserves and must release bytes


@pytest.fixture(scope="module")
def server(start_module_server):
    """One gunicorn for the whole corpus."""
    return start_module_server("corpus-e2e", IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL=QUOTA)


def test_every_corpus_upload_ends_as_the_inspector_decides(server, corpus_root, corpus_rows):
    session = requests.Session()
    session.headers.update({"X-Auth-Token": server.token("p1"), "Accept": "application/json"})
    base = f"{server.url}/v2"
    wrong, accepted, refused = [], 0, 0
    for name, row in corpus_rows.items():
        case = row.case
        created = session.post(f"{base}/images", json={"name": name, "disk_format": case.disk_format,
                                                       "container_format": case.container_format}, timeout=10)
        assert created.status_code == 201, created.text
        image_id = created.json()["id"]
        usage = session.get(f"{base}/info/usage", timeout=10).json()
        stored = server.store_files()
        with open(case.path(corpus_root), "rb") as body:
            put = session.put(f"{base}/images/{image_id}/file", data=body, timeout=60,
                              headers={"Content-Type": "application/octet-stream"})
        image = session.get(f"{base}/images/{image_id}", timeout=10).json()
        size = case.path(corpus_root).stat().st_size
        if row.ours.accepted:
            accepted += 1
            got = (put.status_code, image["status"], image["size"], image["virtual_size"])
            if got != (204, "active", size, row.ours.virtual_size):
                wrong.append((name, got, put.text[:200]))
        else:
            refused += 1
            got = (put.status_code, image["status"], image["size"], image["virtual_size"], image["checksum"])
            if got != (415, "queued", None, None, None) or put.json()["message"] != row.ours.detail:
                wrong.append((name, got, put.text[:200]))
            if server.store_files() != stored:
                wrong.append((name, "store changed", sorted(set(server.store_files()) - set(stored))))
            if session.get(f"{base}/info/usage", timeout=10).json() != usage:
                wrong.append((name, "usage changed"))
    assert wrong == []
    assert accepted >= 30 and refused >= 60  # both outcomes are really exercised
