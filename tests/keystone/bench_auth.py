"""GET /v2/images/{id} under wrk: Keystone auth (tokens cached) next to the built-in token auth.

    .venv/bin/python -m tests.keystone.bench_auth [--duration 10] [--rounds 2] [--connections 16]

Starts one Keystone (as the tests do) and two imagedata servers with the production gunicorn
settings (2 workers x 16 threads), ``IMAGEDATA_AUTH=token`` and ``IMAGEDATA_AUTH=keystone``;
creates one image on each; warms every worker's token cache; then runs wrk on the two in turn,
``--rounds`` times, and prints req/s and p99 of every run and the best of each. Everything is on
loopback and every process is stopped by its pid. Not part of the suite (it takes a minute).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import requests

from tests.e2e.server import Server
from tests.keystone.conftest import populate
from tests.keystone.identity import Identity
from tests.keystone.keystone_server import Keystone, authtoken_section, ensure_venv

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench"))
from loadtest import parse_wrk  # noqa: E402  (bench/ is a folder of scripts, not a package)


def make_image(server: Server, token: str) -> str:
    response = requests.post(f"{server.url}/v2/images", headers={"X-Auth-Token": token}, timeout=10,
                             json={"name": "bench", "disk_format": "raw", "container_format": "bare"})
    response.raise_for_status()
    return response.json()["id"]


def wrk(url: str, token: str, duration: int, connections: int) -> dict:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
            "-H", f"X-Auth-Token: {token}", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    parsed = parse_wrk(done.stdout)
    if done.returncode or parsed["rps"] is None:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    return parsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    opts = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-auth-")
    keystone = Keystone(os.path.join(root, "keystone"), ensure_venv())
    os.makedirs(keystone.root)
    servers = []
    try:
        keystone.setup().start()
        identity = Identity(keystone.auth_url, keystone.admin_password)
        users = populate(identity, "bench-service-password")
        config = os.path.join(root, "authtoken.conf")
        with open(config, "w") as f:
            f.write(authtoken_section(keystone.auth_url, "imagedata", "bench-service-password"))
        token_server = Server(os.path.join(root, "token"))
        keystone_server = Server(os.path.join(root, "ks"), IMAGEDATA_AUTH="keystone",
                                 IMAGEDATA_KEYSTONE_CONFIG=config)
        for server in (token_server, keystone_server):
            server.env["IMAGEDATA_LOG_LEVEL"] = "WARNING"
            servers.append(server.start())
        targets = {"token": (token_server, token_server.token("bench", "member,reader")),
                   "keystone": (keystone_server, identity.token_for(users["alice"]))}
        urls = {}
        for name, (server, token) in targets.items():
            urls[name] = f"{server.url}/v2/images/{make_image(server, token)}"
            for _ in range(200):  # every worker validates (and caches) the token at least once
                assert requests.get(urls[name], headers={"X-Auth-Token": token}, timeout=10).status_code == 200
        results = {name: [] for name in targets}
        for round_number in range(opts.rounds):
            for name, (_server, token) in targets.items():
                result = wrk(urls[name], token, opts.duration, opts.connections)
                results[name].append(result)
                print(f"round {round_number + 1} {name:8s} {result['rps']:8.0f} req/s  p99 {result['p99_ms']:7.2f} ms"
                      f"  non-2xx {result['non2xx']}", flush=True)
        for name, runs in results.items():
            best = max(runs, key=lambda r: r["rps"])
            print(f"best     {name:8s} {best['rps']:8.0f} req/s  p99 {best['p99_ms']:7.2f} ms")
    finally:
        for server in servers:
            server.stop()
        keystone.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
