"""The GET-image load test: wrk on GET /v2/images/{id}, idle and while uploads stream.

Each of the streaming uploaders uploads the source again and again (every
upload verified) until wrk is done, so the load lasts for any file size.
"""

import re
import shutil
import subprocess
import threading
import time

import rawhttp
from phases import rate, settle


WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(text):
    """Parse wrk --latency output: req/s, p99 ms, non-2xx count and socket errors."""
    out = {"rps": None, "p99_ms": None, "non2xx": 0, "connect_errors": 0, "other_socket_errors": 0}
    match = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if match:
        out["rps"] = float(match.group(1))
    match = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if match:
        out["p99_ms"] = float(match.group(1)) * WRK_UNITS[match.group(2)]
    match = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if match:
        out["non2xx"] = int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if match:
        out["connect_errors"] = int(match.group(1))
        out["other_socket_errors"] = sum(int(match.group(i)) for i in (2, 3, 4))
    return out


def run_wrk(bench, target, duration):
    """Run wrk against the download image's record; return parse_wrk's dict."""
    url = f"http://{target.addr[0]}:{target.addr[1]}{target.metadata_path()}"
    argv = ["wrk", "-t2", "-c16", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for name, value in target.headers().items():
        argv += ["-H", f"{name}: {value}"]
    result = subprocess.run(argv + [url], capture_output=True, text=True, timeout=duration + 60)
    parsed = parse_wrk(result.stdout)
    if result.returncode or parsed["rps"] is None:
        raise RuntimeError(f"wrk exited {result.returncode}: {(result.stderr or result.stdout)[-300:]}")
    return parsed


def upload_loop(bench, target, stop, tally):
    """Upload the source again and again until ``stop`` is set (one streaming upload)."""
    while not stop.is_set():
        started = time.perf_counter()
        value = upload_once_quiet(bench, target)
        if value is None:
            tally["failed"] += 1
            time.sleep(0.2)
        else:
            tally["bytes"] += bench.source.size
            tally["seconds"] += time.perf_counter() - started


def upload_once_quiet(bench, target):
    """Like upload_once but without waiting for an idle CPU (it runs under load on purpose)."""
    try:
        upload = target.start_upload()
        with open(bench.source.path, "rb") as fobj:
            resp = rawhttp.upload(target.addr, upload.path, fobj, bench.source.size, upload.headers,
                                  timeout=bench.timeout)
    except (RuntimeError, rawhttp.HTTPFailure) as exc:
        bench.results.problem(f"{target.name}: upload under load failed: {exc}")
        return None
    problems = upload.finish(resp.status)
    for text in problems:
        bench.results.problem(f"under load: {text}")
    return None if problems else rate(bench.source.size, resp.seconds)


def wrk_record(bench, metric, run, parsed, target):
    """Store wrk figures and turn refusals and non-2xx answers into problems."""
    bench.results.add(f"{metric}_rps", target.name, run, parsed["rps"])
    bench.results.add(f"{metric}_p99_ms", target.name, run, parsed["p99_ms"])
    if parsed["non2xx"] or parsed["connect_errors"]:
        bench.results.problem(f"{target.name}: GET image under {metric}: {parsed['non2xx']} non-2xx, "
                              f"{parsed['connect_errors']} connect errors")
    if parsed["other_socket_errors"]:
        bench.results.note(f"{target.name}: wrk counted {parsed['other_socket_errors']} read/write/"
                           f"timeout socket errors ({metric}, run {run + 1})")


def measure_metadata(bench, run):
    """GET /v2/images/{id} with wrk, idle and while 4 uploads stream (ours only)."""
    if not bench.opts.wrk:
        return
    target = bench.ours
    duration = bench.opts.wrk_seconds
    settle(bench)
    try:
        wrk_record(bench, "get_image_idle", run, run_wrk(bench, target, duration), target)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        bench.results.problem(f"wrk (idle) failed: {exc}")
    stop, tally = threading.Event(), {"bytes": 0, "seconds": 0.0, "failed": 0}
    uploaders = [threading.Thread(target=upload_loop, args=(bench, target, stop, tally))
                 for _ in range(bench.opts.load_uploads)]
    settle(bench)
    with bench.rss_phase("get image + uploads", target):
        for thread in uploaders:
            thread.start()
        time.sleep(0.5)  # let the uploads get streaming
        started = time.perf_counter()
        try:
            wrk_record(bench, "get_image_loaded", run, run_wrk(bench, target, duration), target)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            bench.results.problem(f"wrk (under uploads) failed: {exc}")
        stop.set()
        for thread in uploaders:
            thread.join()
    elapsed = time.perf_counter() - started
    bench.results.add("load_upload_aggregate", target.name, run, rate(tally["bytes"], elapsed + 0.5))


def wrk_available():
    """True when the wrk binary is installed."""
    return shutil.which("wrk") is not None
