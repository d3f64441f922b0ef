"""The things the benchmark transfers to and from: the source file and the servers.

A target knows how to start an upload (which path, which headers), how to
check that an upload stored the right bytes, and where to download the
source file from.  ``ImageApiTarget`` serves ours and the real Glance (the
same API); ``NginxTarget`` is the static-file/WebDAV baseline.
"""

import hashlib
import itertools
import mmap
import os
from pathlib import Path

import rawhttp

IMAGE_BODY = {"disk_format": "raw", "container_format": "bare"}


class Source:
    """The random test file, its digests, and a mapping used as the reference bytes."""

    def __init__(self, path, md5, sha512):
        self.path = Path(path)
        self.size = self.path.stat().st_size
        self.md5 = md5
        self.sha512 = sha512
        self.fobj = open(self.path, "rb")
        # ACCESS_COPY gives a writable (never written) view, so ctypes can take its address.
        self.mapping = mmap.mmap(self.fobj.fileno(), 0, access=mmap.ACCESS_COPY)
        self.address = rawhttp.buffer_address(self.mapping)
        self._slice_digests = {}

    def slice_sha512(self, offset, length):
        """Return the sha512 of bytes [offset, offset+length) (cached)."""
        return self._digest("sha512", offset, length)

    def digest(self, algorithm):
        """Return the hex digest of the whole file by a hashlib algorithm (cached)."""
        if algorithm == "sha512":
            return self.sha512
        return self._digest(algorithm, 0, self.size)

    def _digest(self, algorithm, offset, length):
        key = (algorithm, offset, length)
        if key not in self._slice_digests:
            digest = hashlib.new(algorithm)
            view = memoryview(self.mapping)
            for pos in range(offset, offset + length, rawhttp.CHUNK):
                digest.update(view[pos:min(pos + rawhttp.CHUNK, offset + length)])
            view.release()
            self._slice_digests[key] = digest.hexdigest()
        return self._slice_digests[key]

    def same_as_file(self, other_path):
        """True when ``other_path`` holds exactly the source bytes (memcmp)."""
        if os.path.getsize(other_path) != self.size:
            return False
        sink = rawhttp.CompareSink(self.address)
        try:
            with open(other_path, "rb", buffering=0) as fobj:
                pos = 0
                while pos < self.size:
                    got = fobj.readinto(sink.target(pos, self.size - pos))
                    if not got or not sink.commit(pos, got):
                        return False
                    pos += got
            return True
        finally:
            sink.close()

    def close(self):
        """Release the mapping and the file."""
        self.mapping.close()
        self.fobj.close()


class Upload:
    """One upload in flight: where to PUT, with which headers, and how to check it."""

    def __init__(self, target, path, headers, handle):
        self.target = target
        self.path = path
        self.headers = headers
        self.handle = handle

    def url(self):
        """Full URL (for curl)."""
        return f"http://{self.target.addr[0]}:{self.target.addr[1]}{self.path}"

    def finish(self, status):
        """Verify what the server stored and clean it up; return a list of problems."""
        try:
            return self.target.verify_upload(self.handle, status)
        finally:
            self.target.discard_upload(self.handle)


class ImageApiTarget:
    """An OpenStack Image API v2 server: ours or the real Glance."""

    def __init__(self, name, addr, token, source, delete_after=True, store=None, hash_algo="sha512"):
        self.name = name
        self.addr = addr
        self.auth = {"X-Auth-Token": token}
        self.source = source
        self.store = store  # X-Image-Meta-Store of uploads (None: the default store)
        self.hash_algo = hash_algo  # the os_hash_algo uploads must record
        self.delete_after = delete_after
        self.download_id = None
        self.counter = itertools.count(1)
        self.delete_problems = []

    def api(self, method, path, payload=None):
        """Small authenticated JSON request."""
        return rawhttp.request_json(self.addr, method, path, self.auth, payload)

    def create_image(self):
        """POST /v2/images; return the new id or raise RuntimeError."""
        body = dict(IMAGE_BODY, name=f"bench-{os.getpid()}-{next(self.counter)}")
        resp = self.api("POST", "/v2/images", body)
        if resp.status != 201:
            raise RuntimeError(f"{self.name}: POST /v2/images -> {resp.status} {resp.body[:300]!r}")
        return resp.json()["id"]

    def start_upload(self):
        """Create an image and return the Upload for its data."""
        image_id = self.create_image()
        headers = dict(self.auth, **{"Content-Type": "application/octet-stream"})
        if self.store:
            headers["X-Image-Meta-Store"] = self.store
        return Upload(self, f"/v2/images/{image_id}/file", headers, image_id)

    def verify_upload(self, image_id, status):
        """Check the PUT status and the image record's size, checksum and multihash."""
        if status != 204:
            return [f"{self.name}: PUT file -> {status} (want 204)"]
        return self.verify_image(image_id, self.store)

    def verify_image(self, image_id, stores=None):
        """Check that the image is active with the source's size, checksum and multihash (and,
        when given, exactly these ``stores``); return a list of problems."""
        resp = self.api("GET", f"/v2/images/{image_id}")
        if resp.status != 200:
            return [f"{self.name}: GET image {image_id} -> {resp.status}"]
        image = resp.json()
        want = {"status": "active", "size": self.source.size, "checksum": self.source.md5,
                "os_hash_algo": self.hash_algo, "os_hash_value": self.source.digest(self.hash_algo)}
        if stores:
            want["stores"] = stores
        return [f"{self.name}: image {key} = {image.get(key)!r}, want {value!r}"
                for key, value in want.items() if image.get(key) != value]

    def discard_upload(self, image_id):
        """Delete the uploaded image (best effort) so the disk does not fill up."""
        if not self.delete_after or image_id == self.download_id:
            return
        try:
            resp = self.api("DELETE", f"/v2/images/{image_id}")
            if resp.status not in (204, 200) and not self.delete_problems:
                self.delete_problems.append(f"{self.name}: DELETE image -> {resp.status}")
        except rawhttp.HTTPFailure as exc:
            self.delete_problems.append(f"{self.name}: DELETE image failed: {exc}")

    def upload_active(self):
        """Upload the source into a new image (verified); return its id or raise RuntimeError."""
        upload = self.start_upload()
        with open(self.source.path, "rb") as fobj:
            resp = rawhttp.upload(self.addr, upload.path, fobj, self.source.size, upload.headers)
        problems = self.verify_upload(upload.handle, resp.status)
        if problems:
            self.discard_upload(upload.handle)
            raise RuntimeError("; ".join(problems))
        return upload.handle

    def prepare_download(self):
        """Upload the source once (verified) and keep it as the download image."""
        self.download_id = self.upload_active()

    def cleanup(self):
        """Delete the download image (for servers whose state outlives the benchmark)."""
        image_id, self.download_id = self.download_id, None
        if image_id:
            self.discard_upload(image_id)

    def download_path(self):
        """Path of the download image's data."""
        return f"/v2/images/{self.download_id}/file"

    def metadata_path(self):
        """Path of the download image's record (for the GET-image load test)."""
        return f"/v2/images/{self.download_id}"

    def headers(self):
        """Headers every request to this target carries."""
        return dict(self.auth)


class NginxTarget:
    """nginx: GET /files/NAME with sendfile, PUT /dav/NAME with WebDAV."""

    def __init__(self, addr, nginx, source):
        self.name = "nginx"
        self.addr = addr
        self.nginx = nginx
        self.source = source
        self.counter = itertools.count(1)

    def start_upload(self):
        """Return an Upload to a fresh /dav/ name."""
        name = f"put-{next(self.counter)}.bin"
        return Upload(self, f"/dav/{name}", {"Content-Type": "application/octet-stream"}, name)

    def verify_upload(self, name, status):
        """Check the status and compare the stored file with the source byte for byte."""
        if status not in (201, 204):
            return [f"nginx: PUT -> {status} (want 201)"]
        stored = self.nginx.dav_dir / name
        if not stored.exists() or not self.source.same_as_file(stored):
            return [f"nginx: stored file {stored} differs from the source"]
        return []

    def discard_upload(self, name):
        """Remove the stored file."""
        (self.nginx.dav_dir / name).unlink(missing_ok=True)

    def download_path(self):
        """Path of the source file."""
        return f"/files/{self.source.path.name}"

    def headers(self):
        """nginx needs no headers."""
        return {}


class S3PeerTarget:
    """SeaweedFS's own S3 PUT/GET of the source (boto3), the reference of the S3 store."""

    def __init__(self, seaweed, source):
        self.name = "seaweedfs"
        self.seaweed = seaweed
        self.source = source
        self.counter = itertools.count(1)

    def put(self, key=None):
        """Upload the source as ``key``; return (key, seconds)."""
        key = key or f"peer/put-{next(self.counter)}.bin"
        return key, self.seaweed.peer("put", key, self.source.path)["seconds"]

    def get(self, key):
        """Stream ``key`` back, compared with the source; return seconds."""
        return self.seaweed.peer("get", key, self.source.path)["seconds"]

    def delete(self, key):
        """Remove ``key``."""
        self.seaweed.peer("delete", key)
