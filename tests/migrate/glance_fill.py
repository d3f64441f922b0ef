"""Fill a real Glance through its own API with an image of every kind a migration must carry.

Projects: ``pa`` (alice), ``pb`` (bob), ``pc`` (carol), ``pd`` (dave); ``ops`` is the admin's.
Each image is described by a ``Made`` entry: its id, who owns it and a digest of its bytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess

import requests

from tests.glance.glance_server import Glance, token

MIB = 1 << 20
BIG = 200 * MIB
CHOSEN_ID = "c0ffee00-1234-4abc-8def-0123456789ab"
ADMIN = token("root", "ops", "admin")
USERS = {"pa": token("alice", "pa", "member"), "pb": token("bob", "pb", "member"),
         "pc": token("carol", "pc", "member"), "pd": token("dave", "pd", "member")}


@dataclasses.dataclass
class Made:
    """One image put into Glance."""

    key: str
    id: str
    owner: str
    status: str
    sha256: str | None = None  # of the bytes Glance recorded (before any alteration)
    size: int | None = None


def _check(response: requests.Response, *codes: int) -> requests.Response:
    assert response.status_code in codes, f"{response.request.method} {response.url}: {response.status_code} " \
                                          f"{response.text[:300]}"
    return response


class Filler:
    """Creates images in ``glance`` as their owners (or the admin)."""

    def __init__(self, glance: Glance, workdir: str):
        self.glance, self.workdir = glance, workdir
        self.made: dict[str, Made] = {}

    def call(self, method: str, path: str, who: str = ADMIN, **kwargs) -> requests.Response:
        """One request to Glance as ``who`` (a test token)."""
        return requests.request(method, f"{self.glance.url}{path}", headers={"X-Auth-Token": who,
                                                                             **kwargs.pop("headers", {})},
                                timeout=120, **kwargs)

    def create(self, key: str, owner: str, data=None, size: int | None = None, as_admin: bool = False,
               **fields) -> Made:
        """Create an image, upload ``data`` (bytes or a file path) if given, and remember it."""
        who = ADMIN if as_admin else USERS[owner]
        body = {"name": key, "disk_format": "raw", "container_format": "bare", **fields}
        if as_admin:
            body["owner"] = owner
        image = _check(self.call("POST", "/v2/images", who, json=body), 201).json()
        made = Made(key, image["id"], owner, "queued")
        if data is not None:
            digest = hashlib.sha256()
            if isinstance(data, bytes):
                digest.update(data)
                body_data, made.size = data, len(data)
            else:
                with open(data, "rb") as f:
                    for piece in iter(lambda: f.read(MIB), b""):
                        digest.update(piece)
                made.size = os.path.getsize(data)
                body_data = open(data, "rb")
            try:
                _check(self.call("PUT", f"/v2/images/{made.id}/file", who, data=body_data,
                                 headers={"Content-Type": "application/octet-stream"}), 204)
            finally:
                if not isinstance(body_data, bytes):
                    body_data.close()
            made.status, made.sha256 = "active", digest.hexdigest()
        self.made[key] = made
        return made

    def fill(self) -> dict[str, Made]:
        """Every kind of image the migration issue lists."""
        shared = self.create("raw-shared", "pa", os.urandom(MIB + 12345), os_distro="debian",
                             hw_disk_bus="virtio", tags=["base", "debian"])
        for member in ("pb", "pc", "pd"):
            _check(self.call("POST", f"/v2/images/{shared.id}/members", USERS["pa"], json={"member": member}), 200)
        for member, status in (("pb", "accepted"), ("pc", "rejected")):  # pd stays pending
            _check(self.call("PUT", f"/v2/images/{shared.id}/members/{member}", USERS[member],
                             json={"status": status}), 200)
        self.create("qcow2-private", "pb", self._qcow2(), disk_format="qcow2", visibility="private",
                    hw_scsi_model="virtio-scsi", architecture="x86_64", tags=["qcow", "small"])
        self.create("public", "pc", os.urandom(300_000), as_admin=True, visibility="public", os_type="linux")
        self.create("community", "pa", os.urandom(65536), visibility="community")
        self.create("hidden", "pb", os.urandom(4096), os_hidden=True)
        self.create("community-hidden", "pd", os.urandom(1000), visibility="community", os_hidden=True)
        self.create("protected", "pa", os.urandom(2048), protected=True, min_disk=3, min_ram=512)
        deactivated = self.create("deactivated", "pb", os.urandom(100_000))
        _check(self.call("POST", f"/v2/images/{deactivated.id}/actions/deactivate"), 204)
        deactivated.status = "deactivated"
        self.create("queued", "pc", None, disk_format="iso", container_format="bare", purpose="later")
        self.create("empty", "pa", b"")
        self.create("big", "pa", self._big_file())
        self.create("chosen-id", "pd", os.urandom(5000), id=CHOSEN_ID)
        staged = self.create("staged", "pd")  # glance-direct's first step: Glance status `uploading`
        _check(self.call("PUT", f"/v2/images/{staged.id}/stage", USERS["pd"], data=os.urandom(3000),
                         headers={"Content-Type": "application/octet-stream"}), 204)
        staged.status = "uploading"
        altered = self.create("altered", "pb", os.urandom(256 * 1024))
        with open(self.glance.data_path(altered.id), "r+b") as f:  # behind Glance's back
            f.seek(1000)
            f.write(b"\xff" * 16)
        return self.made

    def _qcow2(self) -> bytes:
        path = os.path.join(self.workdir, "small.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "16M"], check=True, timeout=60)
        with open(path, "rb") as f:
            return f.read()

    def _big_file(self) -> str:
        path = os.path.join(self.workdir, "big.raw")
        with open(path, "wb") as f:
            for _ in range(BIG // (8 * MIB)):
                f.write(os.urandom(8 * MIB))
        return path
