#!/usr/bin/env python3
"""The web-download fetcher against curl, fetching the same file from a private nginx.

    .venv/bin/python bench/webfetch.py               # 1 GiB, best of 3 runs each
    .venv/bin/python bench/webfetch.py --size 64M --runs 1

Prints MiB/s of ``curl -o /dev/null``, of ``RemoteSource.readinto`` into one reused
buffer, and of ``RemoteSource.pieces`` with the upload's ring of page-aligned buffers
(the way an import hands pieces to its digests), each with the bytes counted, and the
MiB each client moves per second of its own CPU time. Only loopback traffic; nginx is started here and stopped by its pid.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import servers  # noqa: E402
from options import size_label  # noqa: E402

from imagedata.config import AllowedHost  # noqa: E402
from imagedata.service.webfetch import FetchPolicy, open_url  # noqa: E402

MIB = 1 << 20


def parse_size(text: str) -> int:
    """``1G``, ``64M``, ``512K`` or bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)


def write_file(path: Path, size: int) -> None:
    """``size`` random-looking bytes (one random MiB repeated at shifting offsets)."""
    block = os.urandom(MIB)
    with open(path, "wb") as out:
        for index in range(size // MIB):
            shift = index % 4096
            out.write(block[shift:] + block[:shift])
        out.write(block[: size % MIB])


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_curl(url: str, size: int) -> tuple[float, float]:
    """Wall and CPU seconds curl takes to fetch ``url`` to /dev/null."""
    start, cpu = time.perf_counter(), children_cpu()
    out = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", url],
                         capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start, children_cpu() - cpu
    if int(out.stdout) != size:
        raise RuntimeError(f"curl fetched {out.stdout} bytes, expected {size}")
    return elapsed


def run_fetcher(url: str, policy: FetchPolicy, size: int, ring: bool) -> tuple[float, float]:
    """Wall and CPU seconds the fetcher takes to read ``url`` (reused buffer, or the ring of pieces)."""
    start, cpu = time.perf_counter(), time.process_time()
    total = 0
    with open_url(url, policy, idle_timeout=30) as source:
        if ring:
            for piece in source.pieces(MIB, settle=lambda n: None):
                total += len(piece)
        else:
            buffer = bytearray(MIB)
            while count := source.readinto(buffer):
                total += count
    elapsed = time.perf_counter() - start, time.process_time() - cpu
    if total != size:
        raise RuntimeError(f"the fetcher read {total} bytes, expected {size}")
    return elapsed


def main() -> int:
    """Run the comparison and print one line per client."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1G", help="file size (default 1G)")
    parser.add_argument("--runs", type=int, default=3, help="rounds of the clients in turn; the best counts "
                                                             "(default 3)")
    args = parser.parse_args()
    size = parse_size(args.size)
    if not shutil.which("curl"):
        print("curl not found: apt-get install -y curl", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="webfetch-bench-") as workdir, servers.ProcessGroup() as group:
        nginx = servers.NginxServer(group, workdir)
        nginx.start()
        write_file(nginx.files_dir / "image.raw", size)
        url = f"http://{servers.LOOPBACK}:{nginx.port}/files/image.raw"
        policy = FetchPolicy(allowed_hosts=(AllowedHost(network=ipaddress.ip_network("127.0.0.1/32"),
                                                        port=nginx.port),))
        clients = {
            "curl -o /dev/null": lambda: run_curl(url, size),
            "fetcher readinto (1 MiB buffer)": lambda: run_fetcher(url, policy, size, ring=False),
            "fetcher pieces (page-aligned ring)": lambda: run_fetcher(url, policy, size, ring=True),
        }
        timings = {name: [] for name in clients}
        for _ in range(args.runs):  # in turn, so that a busy moment of the machine hits all alike
            for name, client in clients.items():
                timings[name].append(client())
        print(f"web-download fetch of {size_label(size)} from nginx on loopback, best of {args.runs} "
              "(wall MiB/s; MiB per CPU-second of the client, which a busy machine does not change much):")
        for name, runs in timings.items():
            wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
            print(f"  {name:36} {size / MIB / wall:7.0f} MiB/s {size / MIB / cpu:7.0f} MiB/CPU-s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
