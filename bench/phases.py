"""The timed measurements.  Each function takes the run's ``Bench`` state,
measures one thing for every target (alternating their order per run), and
records figures, problems and notes in ``bench.results``.

Figures are MiB/s (2^20 bytes per second) unless the metric name says
otherwise.  Every downloaded byte is verified: single streams by sha512 of
the received body (computed after the timed window), concurrent streams by
comparing each received piece with the source in place.
"""

import subprocess
import threading
import time

import rawhttp
import sysmon

MIB = 1 << 20


class Results:
    """Figures per metric, target and run; plus problems (functional failures) and notes."""

    def __init__(self):
        self.figures = {}
        self.problems = []
        self.problem_counts = {}
        self.notes = []
        self.idle = []

    def add(self, metric, target, run, value):
        """Record ``value`` for run number ``run``."""
        runs = self.figures.setdefault(metric, {}).setdefault(target, [])
        runs.extend([None] * (run + 1 - len(runs)))
        runs[run] = value
        shown = "-" if value is None else f"{value:.1f}"
        print(f"  {time.strftime('%H:%M:%S')} {metric:<26} {target:<7} {shown}", flush=True)

    def problem(self, text):
        """Record a functional failure (makes the benchmark exit non-zero); repeats are counted."""
        if text not in self.problem_counts:
            print(f"  PROBLEM: {text}", flush=True)
            self.problems.append(text)
        self.problem_counts[text] = self.problem_counts.get(text, 0) + 1

    def note(self, text):
        """Record an observation that is not a failure."""
        if text not in self.notes:
            print(f"  note: {text}", flush=True)
            self.notes.append(text)


def rate(nbytes, seconds):
    """MiB/s, or None when nothing was timed."""
    return nbytes / MIB / seconds if seconds > 0 else None


def settle(bench):
    """Wait for an idle machine before a timed measurement and record how idle it was."""
    if bench.opts.idle_wait > 0:
        bench.results.idle.append(sysmon.wait_for_idle(0.85, bench.opts.idle_wait))


def ordered(targets, run):
    """Alternate the target order between runs so that neither always goes first."""
    return list(targets) if run % 2 == 0 else list(reversed(targets))


def measure_hash(bench, run):
    """Hash-only md5 || sha512 rate (two threads) over the source bytes."""
    settle(bench)
    seconds, md5, sha512 = sysmon.hash_file_two_threads(bench.source.path)
    if (md5, sha512) != (bench.source.md5, bench.source.sha512):
        bench.results.problem("hash-only pass disagrees with the source digests")
    bench.results.add("hash_md5_sha512", "ours", run, rate(bench.source.size, seconds))


def upload_once(bench, target, chunked, use_curl=False):
    """Upload the target's source once; return MiB/s or None after a problem."""
    source = target.source
    try:
        upload = target.start_upload()
    except (RuntimeError, rawhttp.HTTPFailure) as exc:
        bench.results.problem(f"{target.name}: could not start an upload: {exc}")
        return None
    settle(bench)
    try:
        if use_curl:
            status, seconds = curl_upload(upload, source.path, chunked, bench.timeout)
        else:
            with open(source.path, "rb") as fobj:
                resp = rawhttp.upload(target.addr, upload.path, fobj, source.size, upload.headers,
                                      chunked=chunked, timeout=bench.timeout)
            status, seconds = resp.status, resp.seconds
    except (rawhttp.HTTPFailure, RuntimeError) as exc:
        bench.results.problem(f"{target.name}: upload failed: {exc}")
        upload.target.discard_upload(upload.handle)
        return None
    problems = upload.finish(status)
    for text in problems:
        bench.results.problem(text)
    return None if problems else rate(source.size, seconds)


def measure_uploads(bench, run):
    """Uploads in both framings, with the fast client and (optionally) curl."""
    for chunked in (False, True):
        framing = "chunked" if chunked else "cl"
        for target in ordered(bench.upload_targets, run):
            with bench.rss_phase(f"upload {framing}", target):
                value = upload_once(bench, target, chunked)
            bench.results.add(f"upload_{framing}", target.name, run, value)
            if bench.opts.curl:
                with bench.rss_phase(f"upload {framing}", target):
                    value = upload_once(bench, target, chunked, use_curl=True)
                bench.results.add(f"upload_{framing}_curl", target.name, run, value)
    if bench.opts.load_uploads > 1:
        measure_parallel_uploads(bench, run)


def parallel_client(bench, upload, barrier, spans, problems):
    """One of N simultaneous uploads: PUT the source once; append (start, end) or its problems."""
    source = bench.source
    barrier.wait()
    started = time.perf_counter()
    try:
        with open(source.path, "rb") as fobj:
            resp = rawhttp.upload(upload.target.addr, upload.path, fobj, source.size, upload.headers,
                                  timeout=bench.timeout)
        status = resp.status
    except rawhttp.HTTPFailure as exc:
        problems.append(f"{upload.target.name}: parallel upload failed: {exc}")
        upload.target.discard_upload(upload.handle)
        return
    ended = time.perf_counter()
    found = upload.finish(status)
    if found:
        problems.extend(found)
    else:
        spans.append((started, ended))


def measure_parallel_uploads(bench, run):
    """N (--load-uploads) simultaneous Content-Length uploads to ours: aggregate MiB/s, and the
    slowest upload's rate over the fastest's (an upload starved by the others shows here)."""
    target, count = bench.ours, bench.opts.load_uploads
    try:
        uploads = [target.start_upload() for _ in range(count)]
    except (RuntimeError, rawhttp.HTTPFailure) as exc:
        bench.results.problem(f"{target.name}: could not start the parallel uploads: {exc}")
        return
    barrier, spans, problems = threading.Barrier(count + 1), [], []
    threads = [threading.Thread(target=parallel_client, args=(bench, upload, barrier, spans, problems))
               for upload in uploads]
    settle(bench)
    with bench.rss_phase("parallel uploads", target):
        for thread in threads:
            thread.start()
        barrier.wait()
        for thread in threads:
            thread.join()
    for text in problems:
        bench.results.problem(text)
    if problems or len(spans) != count:
        return
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    seconds = [end - start for start, end in spans]
    bench.results.add("upload_parallel", target.name, run, rate(count * bench.source.size, wall))
    bench.results.add("upload_parallel_fairness", target.name, run, min(seconds) / max(seconds))


def check_download(bench, target, resp, offset, length, expect_status):
    """Verify status, Content-Range and the sha512 of a buffered download."""
    label = f"{target.name}: GET {offset}+{length}"
    if resp.status != expect_status:
        return [f"{label} -> {resp.status} (want {expect_status}) {resp.body[:200]!r}"]
    problems = []
    if expect_status == 206:
        want = f"bytes {offset}-{offset + length - 1}/{bench.source.size}"
        if resp.headers.get("content-range") != want:
            problems.append(f"{label}: Content-Range {resp.headers.get('content-range')!r}, want {want!r}")
    if resp.nbytes != length:
        problems.append(f"{label}: {resp.nbytes} bytes, want {length}")
    elif bench.sink.sha512() != bench.source.slice_sha512(offset, length):
        problems.append(f"{label}: body sha512 differs from the source")
    return problems


def download_once(bench, target, offset=0, length=None):
    """One verified download (whole file or a range); return (MiB/s, seconds) or (None, None)."""
    size = bench.source.size
    length = size - offset if length is None else length
    headers = target.headers()
    ranged = (offset, length) != (0, size)
    if ranged:
        headers["Range"] = f"bytes={offset}-{offset + length - 1}"
    settle(bench)
    try:
        resp = rawhttp.download(target.addr, target.download_path(), bench.sink, headers, bench.timeout)
    except rawhttp.HTTPFailure as exc:
        bench.results.problem(f"{target.name}: download failed: {exc}")
        return None, None
    problems = check_download(bench, target, resp, offset, length, 206 if ranged else 200)
    for text in problems:
        bench.results.problem(text)
    if problems:
        return None, None
    return rate(length, resp.seconds), resp.seconds


def curl_download(bench, target):
    """Whole-file download with curl into /dev/null (status and size checked); MiB/s."""
    url = f"http://{target.addr[0]}:{target.addr[1]}{target.download_path()}"
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    for name, value in target.headers().items():
        argv += ["-H", f"{name}: {value}"]
    settle(bench)
    status, nbytes, seconds = run_curl(argv + [url], bench.timeout)
    if status != 200 or nbytes != bench.source.size:
        bench.results.problem(f"{target.name}: curl GET -> {status}, {nbytes} bytes")
        return None
    return rate(nbytes, seconds)


def run_curl(argv, timeout):
    """Run curl with a ``-w '%{http_code} %{size} %{time_total}'``; return the three."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    fields = result.stdout.split()
    if result.returncode or len(fields) != 3:
        raise RuntimeError(f"curl exited {result.returncode}: {result.stderr.strip()[:300]}")
    return int(fields[0]), int(float(fields[1])), float(fields[2])


def curl_upload(upload, path, chunked, timeout):
    """PUT the file with curl; return (status, seconds)."""
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_upload} %{time_total}",
            "-X", "PUT", "-T", str(path), "-H", "Expect:"]
    if chunked:
        argv += ["-H", "Transfer-Encoding: chunked"]
    for name, value in upload.headers.items():
        argv += ["-H", f"{name}: {value}"]
    status, _nbytes, seconds = run_curl(argv + [upload.url()], timeout)
    return status, seconds


def measure_downloads(bench, run):
    """Whole-file downloads (fast client, then curl) for every download target.

    Each target is read once, untimed, first: right after the upload phase the first large
    transfer ran 1.1-2.3x slower for whichever target came first, ours or nginx's (the
    kernel still busy with the gigabytes just written and deleted), and a second one did not.
    """
    for target in ordered(bench.download_targets, run):
        download_once(bench, target)
    for target in ordered(bench.download_targets, run):
        with bench.rss_phase("download", target):
            value, _ = download_once(bench, target)
            bench.results.add("download_full", target.name, run, value)
            if bench.opts.curl:
                bench.results.add("download_full_curl", target.name, run, curl_download(bench, target))


def range_specs(size):
    """The ranges measured: the last 1 MiB and a middle slice (both scaled to ``size``)."""
    tail = min(MIB, max(size // 32, 1))
    middle = min(256 * MIB, max(size // 4, 1))
    return {"range_tail": (size - tail, tail), "range_middle": ((size - middle) // 2, middle)}


def measure_ranges(bench, run):
    """Ranged downloads for ours and nginx; the tail range is also reported in ms."""
    for metric, (offset, length) in range_specs(bench.source.size).items():
        for target in ordered(bench.range_targets, run):
            with bench.rss_phase("range", target):
                value, seconds = download_once(bench, target, offset, length)
            bench.results.add(metric, target.name, run, value)
            if metric == "range_tail" and seconds is not None:
                bench.results.add("range_tail_ms", target.name, run, seconds * 1000)


def concurrent_client(target, bench, barrier, record):
    """One of N concurrent downloaders: compares every byte with the source."""
    source = target.source
    sink = rawhttp.CompareSink(source.address)
    entry = {"start": None, "end": None, "bytes": 0, "error": None}
    try:
        barrier.wait(60)
        entry["start"] = time.perf_counter()
        resp = rawhttp.download(target.addr, target.download_path(), sink, target.headers(),
                                bench.timeout)
        entry["end"] = time.perf_counter()
        if resp.status != 200 or resp.nbytes != source.size:
            entry["error"] = f"HTTP {resp.status}, {resp.nbytes} bytes"
        elif sink.mismatch_at is not None:
            entry["error"] = f"wrong bytes at offset {sink.mismatch_at}"
        else:
            entry["bytes"] = resp.nbytes
    except rawhttp.HTTPFailure as exc:
        refused = isinstance(exc.__cause__, ConnectionRefusedError)
        entry["error"] = ("refused: " if refused else "") + str(exc)
    except threading.BrokenBarrierError:
        entry["error"] = "barrier broken"
    finally:
        entry["end"] = entry["end"] or time.perf_counter()
        sink.close()
        record.append(entry)


def concurrent_once(bench, target, clients):
    """N simultaneous verified whole-file downloads; return (aggregate MiB/s, errors)."""
    barrier = threading.Barrier(clients)
    record = []
    threads = [threading.Thread(target=concurrent_client, args=(target, bench, barrier, record))
               for _ in range(clients)]
    settle(bench)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [e["error"] for e in record if e["error"]]
    starts = [e["start"] for e in record if e["start"]]
    total = sum(e["bytes"] for e in record)
    span = max(e["end"] for e in record) - min(starts) if starts else 0
    return rate(total, span), errors


def measure_concurrency(bench, run):
    """16 and 64 concurrent downloads: aggregate MiB/s, refusals and errors."""
    for clients in bench.opts.concurrency:
        for target in ordered(bench.range_targets, run):
            with bench.rss_phase(f"concurrent {clients}", target):
                value, errors = concurrent_once(bench, target, clients)
            bench.results.add(f"concurrent_{clients}", target.name, run, value)
            bench.results.add(f"concurrent_{clients}_errors", target.name, run, len(errors))
            refused = sum(1 for e in errors if e.startswith("refused"))
            for text in sorted(set(errors))[:5]:
                bench.results.problem(f"{target.name}: {clients} concurrent downloads: "
                                      f"{len(errors)} failed ({refused} refused), e.g. {text}")


def measure_big(bench, target, metric="big", phase=""):
    """Upload and download a second, bigger image through ours (the RSS check at another size).

    ``target`` is an ImageApiTarget for ours whose source is the big file; ``metric`` and
    ``phase`` name the figures and RSS phases (the S3 store gets its own).
    """
    size = target.source.size
    settle(bench)
    with bench.rss_phase(f"upload{phase}", target, size):
        started = time.perf_counter()
        try:
            target.prepare_download()
        except (RuntimeError, rawhttp.HTTPFailure) as exc:
            bench.results.problem(f"{metric} upload ({size} bytes) failed: {exc}")
            return
        bench.results.add(f"{metric}_upload_cl", "ours", 0, rate(size, time.perf_counter() - started))
    settle(bench)
    with bench.rss_phase(f"download{phase}", target, size):
        value, errors = concurrent_once(bench, target, 1)
    bench.results.add(f"{metric}_download", "ours", 0, value)
    for text in errors:
        bench.results.problem(f"{metric} download ({size} bytes): {text}")
    target.download_id, image_id = None, target.download_id
    target.discard_upload(image_id)


def measure_s3(bench, run):
    """The S3 store against SeaweedFS's own S3 PUT/GET of the same file (boto3), same run."""
    if bench.ours_s3 is None:
        return
    ours, peer = bench.ours_s3, bench.s3_peer
    for target in ordered([ours, peer], run):
        if target is ours:
            with bench.rss_phase("upload s3", ours):
                value = upload_once(bench, ours, chunked=False)
        else:
            value = peer_put_once(bench, peer)
        bench.results.add("s3_upload_cl", target.name, run, value)
    for target in ordered([ours, peer], run):
        if target is ours:
            with bench.rss_phase("download s3", ours):
                value, _ = download_once(bench, ours)
        else:
            settle(bench)
            try:
                value = rate(bench.source.size, peer.get(bench.s3_peer_key))
            except RuntimeError as exc:
                bench.results.problem(f"seaweedfs: S3 GET failed: {exc}")
                value = None
        bench.results.add("s3_download_full", target.name, run, value)


def peer_put_once(bench, peer):
    """SeaweedFS's own multipart PUT of the source (boto3), then its object removed; MiB/s or None."""
    settle(bench)
    try:
        key, seconds = peer.put()
        peer.delete(key)
    except RuntimeError as exc:
        bench.results.problem(f"seaweedfs: S3 PUT failed: {exc}")
        return None
    return rate(bench.source.size, seconds)
