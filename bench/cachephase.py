"""The image cache: the S3 store read through this host's cache (a second server of ours).

Each run uploads the source to the S3 store anew, so that its first download misses: that
download streams from SeaweedFS while the copy is made, and is set beside SeaweedFS's own
GET of the same file. The second download is served from the copy, and is set beside nginx
sending the same file.
"""

import time
from pathlib import Path

import phases
import rawhttp
import seaweed
import servers

CACHE_ROOM = 4  # the cache holds this many images of the source's size


def start_server(group, opts, bin_dir, workdir, service_env, weed, size):
    """Start the second server of ours: one store (S3), a cache in the work folder."""
    env = dict(service_env)
    env.pop("IMAGEDATA_ACCEL_REDIRECT", None)  # its downloads are measured from gunicorn
    env.update({"IMAGEDATA_STORES": f"s3={weed.store_url(seaweed.BUCKET, seaweed.PREFIX)}",
                "IMAGEDATA_CACHE_DIR": str(Path(workdir) / "imagedata-cache" / "cache"),
                "IMAGEDATA_CACHE_MAX_BYTES": str(max(CACHE_ROOM * size, 64 << 20))})
    server = servers.ImagedataServer(group, opts.repo, bin_dir, workdir, opts.workers, env, name="imagedata-cache")
    print("bench: starting imagedata with an image cache", flush=True)
    server.start()
    return server


def wait_cached(target, image_id, timeout=120.0):
    """Wait until GET /v2/cache lists the image (its copy verified and in place)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = target.api("GET", "/v2/cache")
        if resp.status == 200 and any(e["image_id"] == image_id for e in resp.json()["cached_images"]):
            return True
        time.sleep(0.05)
    return False


def measure_cache(bench, run):
    """First download (a miss) against SeaweedFS's GET; second (a hit) against nginx."""
    ours, peer = bench.ours_cache, bench.s3_peer
    if ours is None:
        return
    try:
        ours.prepare_download()
    except (RuntimeError, rawhttp.HTTPFailure) as exc:
        bench.results.problem(f"cache: upload failed: {exc}")
        return
    size = bench.source.size
    for target in phases.ordered([ours, peer], run):
        if target is ours:
            value, _ = phases.download_once(bench, ours)
        else:
            phases.settle(bench)
            try:
                value = phases.rate(size, peer.get(bench.s3_peer_key))
            except RuntimeError as exc:
                bench.results.problem(f"seaweedfs: S3 GET failed: {exc}")
                value = None
        bench.results.add("cache_first", target.name, run, value)
    if not wait_cached(ours, ours.download_id):
        bench.results.problem("cache: the first download did not leave a copy in the cache")
    for target in phases.ordered([ours, bench.nginx], run):
        value, _ = phases.download_once(bench, target)
        bench.results.add("cache_hit", target.name, run, value)
    ours.cleanup()
