"""Prometheus metrics, correct across gunicorn workers and their restarts.

prometheus-client's multiprocess mode: every process writes its values to small files in
one directory per server (``PROMETHEUS_MULTIPROC_DIR``, by default ``<data dir>/metrics``),
which the gunicorn master wipes when it starts; ``/metrics`` adds them up. When a worker
dies the master marks it dead, so its "in flight" gauge stops counting while its counters
keep their totals. The ``imagedata`` commands (scrub, verify, recover) write to the same
directory when the server's exists, so their findings show up in the server's ``/metrics``.

Metric objects are created on first use, not at import, so that the process has chosen
its mode (through the environment) before prometheus-client is loaded.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import threading
import time


DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
VERIFY_RESULTS = ("ok", "corrupt", "missing", "unreadable")
SCRUB_KINDS = ("orphan", "broken")
_lock = threading.Lock()
_metrics = None
_cli_lock = None  # held open for the life of a command that shares the server's directory


def directory_for(data_dir: str, env: dict) -> str:
    """The multiprocess directory of the server rooted in ``data_dir``."""
    return env.get(DIR_ENV) or os.path.join(os.path.abspath(data_dir), "metrics")


def prepare_directory(path: str) -> None:
    """Create the directory and remove what a previous server left in it (master start only)."""
    os.makedirs(path, mode=0o750, exist_ok=True)
    for name in glob.glob(os.path.join(path, "*.db")):
        os.unlink(name)


def mark_dead(pid: int) -> None:
    """A worker exited: drop its live gauges (uploads in flight), keep its counters."""
    path = os.environ.get(DIR_ENV)
    if path and os.path.isdir(path):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)


def share_with_server(env: dict, command: str) -> bool:
    """Make this command's metrics part of the server's (when its directory exists).

    The command writes under a fixed name (``cli_<command>``) rather than its pid, so that
    years of timer runs add to one set of counters instead of leaving a file per run; a
    lock keeps two runs of one command from writing the same file at once.
    """
    global _cli_lock
    path = directory_for(env.get("IMAGEDATA_DATA_DIR") or "var", env)
    name = re.sub(r"[^a-z0-9]+", "_", command.lower())[:32] or "cli"
    if not os.path.isdir(path):
        os.environ.pop(DIR_ENV, None)
        return False
    handle = open(os.path.join(path, f".cli_{name}.lock"), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        os.environ.pop(DIR_ENV, None)
        return False
    _cli_lock = handle
    os.environ[DIR_ENV] = path
    from prometheus_client import values

    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: f"cli_{name}")
    return True


class _Metrics:
    """Every metric the service records."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("imagedata_http_requests_total", "Requests answered, by route template and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("imagedata_http_request_duration_seconds",
                                 "Time from the request to the last byte of the answer.", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.uploaded = Counter("imagedata_upload_bytes_total", "Image data bytes received (PUT /file).", registry=r)
        self.downloaded = Counter("imagedata_download_bytes_total", "Image data bytes sent (GET /file).", registry=r)
        self.in_flight = Gauge("imagedata_uploads_in_flight", "Uploads streaming now.", registry=r,
                               multiprocess_mode="livesum")
        self.outcomes = Counter("imagedata_upload_outcomes_total", "Finished uploads, by outcome.", ["outcome"],
                                registry=r)
        self.recoveries = Counter("imagedata_lease_recoveries_total",
                                  "Uploads whose lease died, returned to queued.", registry=r)
        self.scrub_findings = Counter("imagedata_scrub_findings_total", "Problems found by scrub runs.", ["kind"],
                                      registry=r)
        self.scrub_last = Gauge("imagedata_scrub_last_findings", "Problems found by the last scrub run.", ["kind"],
                                registry=r, multiprocess_mode="mostrecent")
        self.scrub_time = Gauge("imagedata_scrub_last_run_timestamp_seconds", "When the last scrub run ended.",
                                registry=r, multiprocess_mode="mostrecent")
        self.verify_images = Counter("imagedata_verify_images_total", "Images checked by verify runs, by result.",
                                     ["result"], registry=r)
        self.verify_bytes = Counter("imagedata_verify_bytes_total", "Bytes re-read by verify runs.", registry=r)
        self.verify_last = Gauge("imagedata_verify_last_images", "Images of the last verify run, by result.",
                                 ["result"], registry=r, multiprocess_mode="mostrecent")
        self.verify_time = Gauge("imagedata_verify_last_run_timestamp_seconds", "When the last verify run ended.",
                                 registry=r, multiprocess_mode="mostrecent")
        self.cache_lookups = Counter("imagedata_cache_lookups_total", "Downloads of cacheable images, by whether "
                                     "this host's cache held them.", ["result"], registry=r)
        self.cache_bytes = Counter("imagedata_cache_served_bytes_total", "Bytes sent from cached copies.",
                                   registry=r)
        self.cache_fills = Counter("imagedata_cache_fills_total", "Cache fills that ended, by outcome.",
                                   ["outcome"], registry=r)
        self.cache_evictions = Counter("imagedata_cache_evictions_total",
                                       "Cached copies evicted to make room for others.", registry=r)


def get() -> _Metrics:
    """The metrics of this process (created on first use; a gunicorn worker calls this when
    it starts, so that its first request does not load prometheus-client after answering)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _Metrics()
    return _metrics


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration."""
    m = get()
    m.requests.labels(method, route, str(status)).inc()
    m.latency.labels(method, route).observe(seconds)


def count_data_bytes(uploaded: int = 0, downloaded: int = 0) -> None:
    """Image data moved by one request."""
    m = get()
    if uploaded:
        m.uploaded.inc(uploaded)
    if downloaded:
        m.downloaded.inc(downloaded)


def outcome_of(exc: BaseException | None) -> str:
    """The outcome label of a finished upload: its status, or why it did not get one."""
    from imagedata.server.drain import ServerStopping
    from imagedata.errors import ClientAborted, ImageDataError, StoreFull, StoreUnavailable

    if exc is None:
        return "204"
    if isinstance(exc, ClientAborted):
        return "client_gone"
    if isinstance(exc, ServerStopping):
        return "server_stopping"
    if isinstance(exc, StoreFull):
        return "413"
    if isinstance(exc, StoreUnavailable):
        return "store_error"
    if isinstance(exc, ImageDataError):
        return str(exc.status)
    return "error"


@contextlib.contextmanager
def track_upload():
    """Around one upload: the in-flight gauge while it runs, then its outcome."""
    m = get()
    m.in_flight.inc()
    try:
        yield
    except BaseException as exc:
        m.outcomes.labels(outcome_of(exc)).inc()
        raise
    else:
        m.outcomes.labels("204").inc()
    finally:
        m.in_flight.dec()


def count_recoveries(count: int) -> None:
    """Leases found dead and returned to queued."""
    if count:
        get().recoveries.inc(count)


def record_scrub(findings) -> None:
    """The findings of one scrub run (objects with a ``kind``)."""
    m = get()
    for kind in SCRUB_KINDS:
        found = sum(f.kind == kind for f in findings)
        m.scrub_findings.labels(kind).inc(found)
        m.scrub_last.labels(kind).set(found)
    m.scrub_time.set(time.time())


def record_verify(counts: dict, read_bytes: int) -> None:
    """The results of one verify run: images per result, bytes re-read."""
    m = get()
    for result in VERIFY_RESULTS:
        m.verify_images.labels(result).inc(counts.get(result, 0))
        m.verify_last.labels(result).set(counts.get(result, 0))
    m.verify_bytes.inc(read_bytes)
    m.verify_time.set(time.time())


def count_cache_lookup(hit: bool) -> None:
    """A download of a cacheable image: served from the cache (hit) or not (miss)."""
    get().cache_lookups.labels("hit" if hit else "miss").inc()


def count_cache_bytes(count: int) -> None:
    """Bytes one download sent from a cached copy."""
    if count:
        get().cache_bytes.inc(count)


def count_cache_fill(failure: str | None) -> None:
    """A fill ended: cached (None), or why not (store_error, corrupt, disk_full, io_error, ...)."""
    get().cache_fills.labels(failure or "cached").inc()


def count_cache_eviction() -> None:
    """A cached copy made room for another."""
    get().cache_evictions.inc()


class _CacheCollector:
    """The cache's size and limit, read from its index at scrape time."""

    def __init__(self, cache):
        self.cache = cache

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        usage = self.cache.usage()
        yield GaugeMetricFamily("imagedata_cache_bytes", "Bytes held by this host's image cache (copies and "
                                "fills in progress).", value=usage.used_bytes)
        yield GaugeMetricFamily("imagedata_cache_max_bytes", "The cache's limit (IMAGEDATA_CACHE_MAX_BYTES).",
                                value=self.cache.max_bytes)
        yield GaugeMetricFamily("imagedata_cache_images", "Images cached on this host.", value=usage.cached_images)


class _StoreCollector:
    """Store health and free bytes, read at scrape time (each store caches its probe)."""

    def __init__(self, stores):
        self.stores = stores

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("imagedata_store_up", "1 when the store can take data.", labels=["store"])
        free = GaugeMetricFamily("imagedata_store_free_bytes", "Free bytes of the store, where it knows them.",
                                 labels=["store"])
        for store in self.stores:
            health = store.health()
            up.add_metric([store.store_id], 0 if health.problem else 1)
            if health.free_bytes is not None:
                free.add_metric([store.store_id], health.free_bytes)
        yield up
        yield free


class _Local:
    """This process's own metrics (when not in multiprocess mode)."""

    def collect(self):
        return get().registry.collect()


def render(stores, cache=None) -> tuple[bytes, str]:
    """The text exposition of every process's metrics plus the stores' (and the cache's), and
    its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    path = os.environ.get(DIR_ENV)
    if path and os.path.isdir(path):
        get()  # this worker's files exist even before its first request
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_Local())
    registry.register(_StoreCollector(stores))
    if cache is not None:
        registry.register(_CacheCollector(cache))
    return generate_latest(registry), CONTENT_TYPE_LATEST
