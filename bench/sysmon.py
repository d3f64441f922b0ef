"""Machine-side measurements: idle CPU, worker RSS sampling, hash-only rate."""

import hashlib
import mmap
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

HASH_CHUNK = 1 << 20


def cpu_times():
    """Return (idle, total) jiffies summed over all CPUs."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return idle, sum(fields[:8])


def idle_fraction(interval=0.5):
    """Return the fraction of idle CPU over ``interval`` seconds."""
    idle0, total0 = cpu_times()
    time.sleep(interval)
    idle1, total1 = cpu_times()
    return (idle1 - idle0) / max(total1 - total0, 1)


def wait_for_idle(threshold=0.85, max_wait=10.0):
    """Wait up to ``max_wait`` s for ``threshold`` idle CPU; return the last idle fraction.

    A result below the threshold means the measurement starts contended; the
    caller records it instead of failing.
    """
    deadline = time.monotonic() + max_wait
    idle = idle_fraction(0.3)
    while idle < threshold and time.monotonic() < deadline:
        idle = idle_fraction(0.5)
    return idle


def read_rss_kib(pid):
    """Return VmRSS of ``pid`` in KiB, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples the RSS of a gunicorn master's workers at ``hz`` in a thread.

    ``phase(name)`` brackets a measurement; for each phase it keeps, per
    worker pid, the RSS at the phase's start and the peak during it.  The
    baseline of a worker is its RSS when first seen idle (``mark_baseline``).
    Two figures follow: growth (peak minus baseline: everything the worker
    kept since start-up) and rise (peak minus the phase's start: what one
    transfer adds, which must not depend on the image size).
    """

    def __init__(self, list_workers, hz=20):
        self.list_workers = list_workers
        self.interval = 1.0 / hz
        self.baseline = {}
        self.peak = {}
        self.phases = {}
        self.current = None
        self.seen = set()
        self.initial = set()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, name="rss-sampler", daemon=True)

    def start(self):
        """Start sampling."""
        self.thread.start()

    def stop(self):
        """Stop sampling."""
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(2)

    def mark_baseline(self):
        """Record the current RSS of every worker as its idle baseline."""
        for pid in self.list_workers():
            rss = read_rss_kib(pid)
            if rss is not None:
                self.baseline.setdefault(pid, rss)
                self.initial.add(pid)

    def sample(self):
        """Take one sample of every worker."""
        for pid in self.list_workers():
            rss = read_rss_kib(pid)
            if rss is None:
                continue
            with self.lock:
                self.seen.add(pid)
                if self.initial:  # a worker started later: its first sample is its baseline
                    self.baseline.setdefault(pid, rss)
                self.peak[pid] = max(self.peak.get(pid, 0), rss)
                if self.current is not None:
                    start, peak = self.current.setdefault(pid, (rss, rss))
                    self.current[pid] = (start, max(peak, rss))

    def run(self):
        """Sampling loop."""
        while not self.stop_event.is_set():
            try:
                self.sample()
            except Exception:  # a worker vanishing mid-read is not an error
                pass
            self.stop_event.wait(self.interval)

    @contextmanager
    def phase(self, name):
        """Record per-worker RSS start/peak while the block runs."""
        with self.lock:
            self.current = {}
        self.sample()
        try:
            yield
        finally:
            self.sample()
            with self.lock:
                self.phases.setdefault(name, []).append(self.current)
                self.current = None

    def growth_mb(self, pid, peak_kib):
        """Return peak minus the worker's baseline in MB (10^6 bytes)."""
        base = self.baseline.get(pid)
        return None if base is None else (peak_kib - base) * 1024 / 1e6

    @staticmethod
    def run_extremes(run):
        """Largest RSS at the start and at the peak of one phase run, in MB (shows a trend)."""
        if not run:
            return None
        return {"start_mb": round(max(start for start, _ in run.values()) * 1024 / 1e6, 1),
                "peak_mb": round(max(peak for _, peak in run.values()) * 1024 / 1e6, 1)}

    def summary(self):
        """Return a JSON-able summary: baselines, peaks and per-phase growth in MB."""
        phases = {}
        for name, runs in self.phases.items():
            growth, rise, peak = [], [], 0
            for run in runs:
                for pid, (start, top) in run.items():
                    peak = max(peak, top)
                    rise.append((top - start) * 1024 / 1e6)
                    value = self.growth_mb(pid, top)
                    if value is not None:
                        growth.append(value)
            phases[name] = {"peak_mb": round(peak * 1024 / 1e6, 1),
                            "max_growth_mb": round(max(growth), 1) if growth else None,
                            "max_rise_mb": round(max(rise), 1) if rise else None,
                            "runs": [self.run_extremes(run) for run in runs]}
        growth_all = [v["max_growth_mb"] for v in phases.values() if v["max_growth_mb"] is not None]
        return {
            "baseline_mb": {str(p): round(k * 1024 / 1e6, 1) for p, k in self.baseline.items()},
            "peak_mb": {str(p): round(k * 1024 / 1e6, 1) for p, k in self.peak.items()},
            "workers_seen": len(self.seen),
            "workers_started_later": len(self.seen - self.initial),
            "phases": phases,
            "max_growth_mb": round(max(growth_all), 1) if growth_all else None,
        }


def hash_view(algorithm, view, length):
    """Hash ``length`` bytes of ``view`` in 1 MiB pieces; return the hex digest."""
    digest = hashlib.new(algorithm)
    for pos in range(0, length, HASH_CHUNK):
        digest.update(view[pos:min(pos + HASH_CHUNK, length)])
    return digest.hexdigest()


def hash_file_two_threads(path):
    """Hash a (page-cached) file with md5 and sha512 in two threads.

    Returns (seconds, md5 hex, sha512 hex).  This is the upload's CPU limit:
    the service must compute both over the same bytes.
    """
    size = os.path.getsize(path)
    results = {}
    with open(path, "rb") as fobj, mmap.mmap(fobj.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        mapped.madvise(mmap.MADV_WILLNEED)

        def work(algorithm):
            results[algorithm] = hash_view(algorithm, view, size)

        threads = [threading.Thread(target=work, args=(alg,)) for alg in ("md5", "sha512")]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
        view.release()
    return seconds, results["md5"], results["sha512"]


def write_random_file(path, size):
    """Write ``size`` random bytes to ``path`` (1 MiB at a time) and return the path."""
    with open(path, "wb", buffering=0) as fobj:
        remaining = size
        while remaining:
            piece = os.urandom(min(HASH_CHUNK, remaining))
            fobj.write(piece)
            remaining -= len(piece)
    return path
