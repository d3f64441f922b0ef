#!/usr/bin/env python3
"""imagedata benchmark: our service against nginx, the hash limit and (optionally) Glance.

One run creates a random file, starts imagedata under gunicorn with the
repository's production ``gunicorn.conf.py`` and a private nginx (GET with
sendfile and ``tcp_nopush off``, WebDAV PUT), each on a free 127.0.0.1 port
with a temporary data folder, and measures (median of ``--runs``):

* the in-process md5 || sha512 hash-only rate (two threads) of the same bytes;
* uploads with Content-Length and chunked (fast raw-socket client, plus curl);
* whole-file downloads, the last 1 MiB and a 256 MiB middle slice (scaled
  down for small files), 16 and 64 concurrent downloads;
* GET /v2/images/{id} with wrk, idle and while 4 uploads stream;
* the RSS of every gunicorn worker, sampled from /proc at 20 Hz.

It prints one table of absolute figures and same-run ratios, writes it as
JSON with ``--json``, and exits 1 when anything failed functionally (wrong
bytes, HTTP errors, refusals) -- never because a figure is slow.  Exit 2
means the benchmark could not be set up.

    python3 bench/run.py --smoke                  # 32 MiB, 1 run (what CI runs)
    python3 bench/run.py --json bench.json        # 1 GiB, 3 runs
    python3 bench/run.py --big 4G --glance        # also the 4 GiB RSS check and Glance

Only loopback traffic; every process started is stopped by its pid.
"""

import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

# The repository's testkit package (free ports, nginx and SeaweedFS launchers) is shared with
# the tests; it keeps to the standard library, as the benchmark does.
sys.path.append(str(Path(__file__).resolve().parent.parent))

import cachephase  # noqa: E402
import importphase  # noqa: E402
import loadtest  # noqa: E402
import phases  # noqa: E402
import report  # noqa: E402
import seaweed  # noqa: E402
import servers  # noqa: E402
import sysmon  # noqa: E402
from options import default_peers_kit, find_bin_dir, parse_args, size_label  # noqa: E402
from rawhttp import BufferSink, HTTPFailure, request  # noqa: E402
from targets import ImageApiTarget, NginxTarget, S3PeerTarget, Source  # noqa: E402
from testkit.ports import LOOPBACK  # noqa: E402


# The measured phases, in the order they run (--phases picks some of them).
PHASES = {"hash": phases.measure_hash, "uploads": phases.measure_uploads,
          "downloads": phases.measure_downloads, "ranges": phases.measure_ranges,
          "concurrency": phases.measure_concurrency, "s3": phases.measure_s3,
          "cache": cachephase.measure_cache, "import": importphase.measure_import,
          "get-image": loadtest.measure_metadata}


class Bench:
    """Everything the phases share: options, source, targets, sink, results, RSS sampler."""

    def __init__(self, opts, source, sampler, ours, nginx, glance):
        self.opts = opts
        self.source = source
        self.sampler = sampler
        self.ours = ours
        self.nginx = nginx
        self.results = phases.Results()
        self.sink = BufferSink(source.size)
        self.timeout = max(120.0, source.size / (20 << 20))
        self.upload_targets = [t for t in (ours, nginx, glance) if t]
        self.download_targets = self.upload_targets
        self.range_targets = [ours, nginx]
        self.ours_s3 = None  # ours with uploads into the S3 store (--s3)
        self.s3_peer = None  # SeaweedFS's own S3 PUT/GET
        self.s3_peer_key = None  # the peer's copy of the source, for its GETs
        self.ours_cache = None  # a second server of ours: the S3 store behind an image cache

    def rss_phase(self, name, target, size=None):
        """Sample worker RSS while ours transfers (a no-op for the other targets)."""
        if target.name != "ours":
            return nullcontext()
        return self.sampler.phase(f"{name}@{size_label(size or self.source.size)}")

    def close(self):
        """Release the download buffer."""
        self.sink.close()


def make_source(path, size):
    """Write the random file and take its digests (the hash pass also warms the page cache)."""
    print(f"bench: writing {size_label(size)} of random data to {path}", flush=True)
    sysmon.write_random_file(path, size)
    _, md5, sha512 = sysmon.hash_file_two_threads(path)
    return Source(path, md5, sha512)


def warm_up(target, sampler):
    """A few small requests per worker, then record each worker's idle RSS."""
    for _ in range(20):
        request(target.addr, "GET", "/versions")
        request(target.addr, "GET", "/v2/images", target.headers())
    time.sleep(0.3)
    sampler.mark_baseline()


def start_glance(opts, group):
    """Start the real Glance when asked and installed; return (server, reason it was skipped)."""
    if not opts.glance:
        return None, None
    kit = opts.peers_kit or default_peers_kit(opts.repo)
    peers_dir = Path(os.environ.get("IMAGEDATA_PEERS_DIR")
                     or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imagedata-peers")
    if kit is None:
        return None, "peers kit not found (pass --peers-kit)"
    glance = servers.GlanceServer(group, kit, peers_dir)
    reason = glance.missing()
    if reason:
        return None, reason
    glance.start()
    return glance, None


def start_seaweed(opts, group, workdir, bin_dir):
    """Start SeaweedFS for --s3 (or when installed); return (server, reason it was skipped)."""
    if opts.s3 is False:
        return None, None
    server = seaweed.SeaweedServer(group, bin_dir, workdir)
    reason = server.missing()
    if reason:
        if opts.s3:
            raise RuntimeError(f"--s3: {reason}")
        return None, reason
    print("bench: starting SeaweedFS", flush=True)
    server.start()
    return server, None


def start_everything(opts, group, workdir):
    """Start nginx, SeaweedFS, ours (and Glance); return (Bench, {name: server}) for the config record."""
    bin_dir = find_bin_dir(opts)
    service_env = dict(opts.service_env)
    weed, weed_skipped = start_seaweed(opts, group, workdir, bin_dir)
    if weed:
        service_env.update(weed.env())
    if opts.accel:
        service_env.setdefault("IMAGEDATA_ACCEL_REDIRECT", opts.accel_prefix.rstrip("/"))
    ours_server = servers.ImagedataServer(group, opts.repo, bin_dir, workdir, opts.workers, service_env)
    if weed:
        ours_server.env["IMAGEDATA_STORES"] += f",s3={weed.store_url(seaweed.BUCKET, seaweed.PREFIX)}"
    accel = None
    if opts.accel:
        accel = {"accel_prefix": opts.accel_prefix, "stores_dir": ours_server.store_parent,
                 "upstreams": [f"{LOOPBACK}:{ours_server.port}"]}
    nginx = servers.NginxServer(group, workdir, accel)
    nginx.write_config()
    if "import" in opts.phases:  # web-download from this nginx, unless --service-env says otherwise
        ours_server.env.update({name: value for name, value in importphase.service_env(nginx.port).items()
                                if name not in service_env})
    source = make_source(nginx.files_dir / "image.bin", opts.size)
    print("bench: starting nginx and imagedata", flush=True)
    nginx.start()
    ours_server.start()
    ours_addr = nginx.accel_addr if opts.accel else ours_server.addr
    ours = ImageApiTarget("ours", ours_addr, ours_server.token, source, hash_algo=ours_hash_algo(opts))
    glance_server, skipped = start_glance(opts, group)
    glance = None
    if glance_server:
        glance = ImageApiTarget("glance", glance_server.addr, "bench", source)
        group.on_close(glance.cleanup)  # runs before stop.sh: Glance's state folder is kept
    sampler = sysmon.RssSampler(ours_server.workers)
    sampler.start()
    group.on_close(sampler.stop)
    warm_up(ours, sampler)
    bench = Bench(opts, source, sampler, ours, NginxTarget(nginx.addr, nginx, source), glance)
    if skipped:
        bench.results.note(f"Glance skipped: {skipped}")
    if weed_skipped:
        bench.results.note(f"S3 store skipped: {weed_skipped}")
    cache_server = None
    if weed:
        bench.ours_s3 = ImageApiTarget("ours", ours_addr, ours_server.token, source, store="s3",
                                       hash_algo=ours.hash_algo)
        bench.s3_peer = S3PeerTarget(weed, source)
        if "cache" in opts.phases:
            cache_server = cachephase.start_server(group, opts, bin_dir, workdir, service_env, weed, source.size)
            bench.ours_cache = ImageApiTarget("ours", cache_server.addr, cache_server.token, source,
                                              hash_algo=ours.hash_algo)
    return bench, {"ours": ours_server, "nginx": nginx, "glance": glance_server, "seaweedfs": weed,
                   "ours_cache": cache_server}


def prepare_downloads(bench):
    """Store the source once in ours (and Glance) to download it later.

    Each stored copy is read once, untimed: our filesystem store writes uploads past the
    page cache (direct I/O), so its first read comes from the disk, while nginx serves a file
    that is in the cache. The downloads compare serving, not the disk.
    """
    for target in bench.upload_targets:
        if isinstance(target, ImageApiTarget):
            with bench.rss_phase("upload", target):
                target.prepare_download()
            with bench.rss_phase("download", target):
                phases.download_once(bench, target)
    if bench.ours_s3 is not None:
        with bench.rss_phase("upload s3", bench.ours_s3):
            bench.ours_s3.prepare_download()
        bench.s3_peer_key, _ = bench.s3_peer.put("peer/source.bin")
        # SeaweedFS's first large reads cost it 2-3x the system time of its later ones, whoever
        # the client is (its own warm-up): read both copies once, untimed, so that the first
        # measured download, ours or its own, does not pay for it alone.
        bench.s3_peer.get(bench.s3_peer_key)
        with bench.rss_phase("download s3", bench.ours_s3):
            phases.download_once(bench, bench.ours_s3)


def run_phases(bench):
    """All measurements, interleaved run by run so ratios compare the same moment."""
    steps = [(name, step) for name, step in PHASES.items() if name in bench.opts.phases]
    for run in range(bench.opts.runs):
        for name, step in steps:
            print(f"bench: run {run + 1}/{bench.opts.runs}: {name}", flush=True)
            step(bench, run)


def run_big(bench, workdir, token):
    """The --big RSS check: a second file of another size through ours."""
    path = Path(workdir) / "big.bin"
    source = make_source(path, bench.opts.big)
    try:
        print(f"bench: {size_label(source.size)} upload and download through ours", flush=True)
        phases.measure_big(bench, ImageApiTarget("ours", bench.ours.addr, token, source,
                                                 hash_algo=bench.ours.hash_algo))
        if bench.ours_s3 is not None:
            print(f"bench: {size_label(source.size)} upload and download through ours, S3 store", flush=True)
            phases.measure_big(bench, ImageApiTarget("ours", bench.ours.addr, token, source, store="s3",
                                                     hash_algo=bench.ours.hash_algo),
                               metric="s3big", phase=" s3")
    finally:
        source.close()
        path.unlink(missing_ok=True)


def config_record(opts, running):
    """What was measured, for the JSON document."""
    ours = running["ours"]
    return {
        "size": opts.size, "size_label": size_label(opts.size), "runs": opts.runs, "smoke": opts.smoke,
        "big": opts.big, "concurrency": opts.concurrency, "load_uploads": opts.load_uploads,
        "wrk_seconds": opts.wrk_seconds if opts.wrk else None, "curl": opts.curl, "accel": opts.accel,
        "ours": {"port": ours.port, "workers_env": opts.workers, "service_env": dict(opts.service_env),
                 "workers": len(ours.workers())},
        "nginx": {"port": running["nginx"].port},
        "glance": {"port": running["glance"].port} if running["glance"] else None,
        "seaweedfs": {"endpoint": running["seaweedfs"].endpoint, "part_size": seaweed.PART_SIZE}
        if running["seaweedfs"] else None,
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version()},
        "units": "MiB/s = 2^20 bytes/s; MB = 10^6 bytes",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def finish(bench, opts, running):
    """Build, print and save the report; return the exit status."""
    rss = bench.sampler.summary()
    problems = bench.results.problems
    for target in bench.upload_targets:
        for text in getattr(target, "delete_problems", []):
            bench.results.note(text)
    doc = report.build_document(config_record(opts, running), bench.results.figures, rss,
                                problems, bench.results.notes, bench.results.idle)
    tail, middle = phases.range_specs(opts.size).values()
    labels = {"tail": size_label(tail[1]), "middle": size_label(middle[1]),
              "uploads": opts.load_uploads, "big": size_label(opts.big or 0)}
    print()
    print(f"imagedata benchmark: {size_label(opts.size)}, {opts.runs} run(s), median [min-max]; "
          f"ratios are medians of same-run ratios; "
          f"{doc['idle_checks']['contended_starts']}/{doc['idle_checks']['count']} starts contended")
    print(report.render_table(doc, labels))
    for text in bench.results.notes:
        print(f"note: {text}")
    for text in problems:
        print(f"PROBLEM: {text}")
    if opts.json:
        report.write_json(doc, opts.json)
        print(f"bench: wrote {opts.json}")
    print("bench: OK" if not problems else f"bench: FAILED ({len(problems)} problem(s))")
    return 0 if not problems else 1


def save_metrics(server, path):
    """Write what the service's /metrics says after the run (as an operator's scrape sees it)."""
    answer = request(server.addr, "GET", "/metrics", {"X-Auth-Token": server.token}, timeout=30)
    if answer.status != 200:
        raise RuntimeError(f"/metrics scrape -> {answer.status}")
    Path(path).write_bytes(answer.body)
    print(f"bench: wrote the /metrics scrape to {path}")


def ours_hash_algo(opts):
    """The os_hash_algo our uploads must record: the service's IMAGEDATA_HASH_ALGO."""
    return dict(opts.service_env).get("IMAGEDATA_HASH_ALGO", "sha512")


def install_signal_handlers():
    """Turn SIGTERM/SIGHUP into SystemExit so that cleanup runs."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


@contextmanager
def temporary_folder(opts):
    """A private temporary folder, removed at the end unless --keep."""
    path = Path(tempfile.mkdtemp(prefix="imagedata-bench-", dir=opts.workdir))
    try:
        yield path
    finally:
        if opts.keep:
            print(f"bench: kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv=None):
    """Run the benchmark; return the exit status."""
    opts = parse_args(argv, __doc__)
    install_signal_handlers()
    with temporary_folder(opts) as workdir, servers.ProcessGroup() as group:
        try:
            bench, running = start_everything(opts, group, workdir)
        except (RuntimeError, HTTPFailure, OSError) as exc:
            print(f"bench: setup failed: {exc}", file=sys.stderr)
            return 2
        try:
            prepare_downloads(bench)
            if opts.big:  # first, while the workers hold no memory from concurrent phases
                run_big(bench, workdir, running["ours"].token)
            run_phases(bench)
            if opts.metrics:
                save_metrics(running["ours"], opts.metrics)
        except (RuntimeError, HTTPFailure) as exc:
            bench.results.problem(f"benchmark aborted: {exc}")
        finally:
            group.on_close(bench.close)
            group.on_close(bench.source.close)
        return finish(bench, opts, running)


if __name__ == "__main__":
    sys.exit(main())
