"""Driving the import API of a real server over HTTP (set-up and checks of the import tests)."""
from __future__ import annotations

import hashlib
import random
import time

import requests

MIB = 1 << 20
OCTET = {"Content-Type": "application/octet-stream"}
NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"


def blob(size: int, seed: int) -> bytes:
    """``size`` bytes that differ at every offset (a spliced copy cannot compare equal)."""
    return random.Random(seed).randbytes(size)


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def web_download(uri: str, **extra) -> dict:
    return {"method": {"name": "web-download", "uri": uri}, **extra}


GLANCE_DIRECT = {"method": {"name": "glance-direct"}}


def copy_image(*stores: str, **extra) -> dict:
    return {"method": {"name": "copy-image"}, **({"stores": list(stores)} if stores else {}), **extra}


def wait_for(check, what: str, timeout: float = 20) -> None:
    """Poll ``check()`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def stalled_web_download(api: "Api", origin, data: bytes, after: int) -> str:
    """A new image whose web-download from ``origin`` has received ``after`` bytes of
    ``data`` and waits for more (``origin.configure(data)`` lets it go on)."""
    origin.configure(data, stall_after=after)
    image_id = api.create()
    response = api.start(image_id, web_download(origin.url()))
    assert response.status_code == 202, response.text
    wait_for(lambda: origin.bytes_sent >= after, "the web-download did not fetch")
    return image_id


class Api:
    """One caller's view of one server (or of nginx in front of several)."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.session = requests.Session()
        self.session.headers["X-Auth-Token"] = token

    def create(self, **fields) -> str:
        body = {"name": "import-test", "disk_format": "raw", "container_format": "bare", **fields}
        response = self.session.post(f"{self.url}/v2/images", json={k: v for k, v in body.items() if v is not None},
                                     timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def show(self, image_id: str) -> dict:
        response = self.session.get(f"{self.url}/v2/images/{image_id}", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def stage(self, image_id: str, data, **headers) -> requests.Response:
        return self.session.put(f"{self.url}/v2/images/{image_id}/stage", data=data, headers={**OCTET, **headers},
                                timeout=120)

    def upload(self, image_id: str, data, **headers) -> requests.Response:
        return self.session.put(f"{self.url}/v2/images/{image_id}/file", data=data, headers={**OCTET, **headers},
                                timeout=120)

    def start(self, image_id: str, body, **headers) -> requests.Response:
        """POST /import."""
        return self.session.post(f"{self.url}/v2/images/{image_id}/import", json=body, headers=headers, timeout=30)

    def delete_copy(self, store_id: str, image_id: str) -> requests.Response:
        return self.session.delete(f"{self.url}/v2/stores/{store_id}/{image_id}", timeout=30)

    def delete(self, image_id: str) -> requests.Response:
        return self.session.delete(f"{self.url}/v2/images/{image_id}", timeout=30)

    def tasks(self, image_id: str) -> list[dict]:
        response = self.session.get(f"{self.url}/v2/images/{image_id}/tasks", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["tasks"]

    def wait_task(self, image_id: str, timeout: float = 60, request_id: str | None = None) -> dict:
        """The image's task started by ``request_id`` (default: its newest task) once it has
        ended (success or failure). Tasks are listed newest first to the second only."""
        deadline = time.monotonic() + timeout
        while True:
            found = [task for task in self.tasks(image_id) if request_id in (None, task["request_id"])]
            if found and found[0]["status"] in ("success", "failure"):
                return found[0]
            assert time.monotonic() < deadline, f"the import of {image_id} did not end: {found}"
            time.sleep(0.1)

    def imported(self, image_id: str, body, timeout: float = 60, **headers) -> tuple[dict, dict]:
        """Start an import (202) and wait for it: (its task, the image)."""
        response = self.start(image_id, body, **headers)
        assert response.status_code == 202, response.text
        task = self.wait_task(image_id, timeout, response.headers["x-openstack-request-id"])
        return task, self.show(image_id)

    def data(self, image_id: str, **headers) -> bytes:
        response = self.session.get(f"{self.url}/v2/images/{image_id}/file", headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        return response.content
