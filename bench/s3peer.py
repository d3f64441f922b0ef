"""The S3 reference of the benchmark: SeaweedFS's own S3 PUT and GET of a file, with boto3.

Run by ``seaweed.py`` with the service's python (it has boto3); it prints one JSON line.
The client is plain boto3 as a user would run it: path-style, checksums only where S3
requires them, and so, over http, a SHA-256 of each part's payload in its signature (about
0.6 CPU-s per GiB). The service's store sends a CRC32 per part instead (``checksum=crc32``,
its default), which SeaweedFS verifies; that saving is the store's, not the reference's.

    s3peer.py mkbucket
    s3peer.py put KEY FILE      # multipart, PART_SIZE parts one after another; {"seconds"}
    s3peer.py get KEY FILE      # one streamed GET in 1 MiB pieces, compared with FILE; {"seconds"}
    s3peer.py delete KEY
"""

import json
import mmap
import os
import sys
import time

import boto3
from botocore.config import Config

PIECE = 1 << 20


def client():
    """A boto3 client for the benchmark's SeaweedFS."""
    return boto3.client(
        "s3", endpoint_url=os.environ["BENCH_S3_ENDPOINT"], region_name=os.environ["BENCH_S3_REGION"],
        aws_access_key_id=os.environ["BENCH_S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["BENCH_S3_SECRET_KEY"],
        config=Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=120,
                      retries={"max_attempts": 1}, request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


def put(s3, bucket, key, path):
    """Multipart upload of the file, one part at a time; returns the seconds it took."""
    part_size = int(os.environ["BENCH_S3_PART_SIZE"])
    size = os.path.getsize(path)
    started = time.perf_counter()
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    with open(path, "rb", buffering=0) as fobj:
        for number, offset in enumerate(range(0, max(size, 1), part_size), start=1):
            body = fobj.read(min(part_size, size - offset))
            etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                  Body=body)["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    seconds = time.perf_counter() - started
    stored = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    if stored != size:
        raise SystemExit(f"stored {stored} bytes, want {size}")
    return seconds


def get(s3, bucket, key, path):
    """One streamed GET read in 1 MiB pieces, each compared with the file; returns the seconds."""
    size = os.path.getsize(path)
    with open(path, "rb") as fobj, mmap.mmap(fobj.fileno(), 0, access=mmap.ACCESS_READ) as source:
        started = time.perf_counter()
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        pos = 0
        while True:
            piece = body.read(PIECE)
            if not piece:
                break
            if source[pos:pos + len(piece)] != piece:
                raise SystemExit(f"GET returned wrong bytes at offset {pos}")
            pos += len(piece)
        seconds = time.perf_counter() - started
    if pos != size:
        raise SystemExit(f"GET returned {pos} bytes, want {size}")
    return seconds


def main(argv):
    """Run one action and print its JSON result."""
    s3 = client()
    bucket = os.environ["BENCH_S3_BUCKET"]
    action, args = argv[0], argv[1:]
    if action == "mkbucket":
        existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
        result = {"bucket": bucket}
    elif action == "put":
        result = {"seconds": put(s3, bucket, *args)}
    elif action == "get":
        result = {"seconds": get(s3, bucket, *args)}
    elif action == "delete":
        s3.delete_object(Bucket=bucket, Key=args[0])
        result = {"deleted": args[0]}
    else:
        raise SystemExit(f"unknown action {action!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
