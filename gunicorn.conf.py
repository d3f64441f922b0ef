"""Production gunicorn settings and server hooks (no app imports here).

gunicorn's own tuning belongs to gunicorn: the values below are defaults, and its command
line or ``GUNICORN_CMD_ARGS`` override them, e.g.
``GUNICORN_CMD_ARGS="--workers 4 --threads 32 --graceful-timeout 60"``.
"""
import os

# Settings this file used to read; a server still given one would silently run differently.
_REPLACED = {"IMAGEDATA_WORKERS": "--workers", "IMAGEDATA_THREADS": "--threads",
             "IMAGEDATA_WORKER_TIMEOUT": "--timeout", "IMAGEDATA_GRACEFUL_TIMEOUT": "--graceful-timeout",
             "IMAGEDATA_ACCESS_LOG": "--access-logfile", "IMAGEDATA_FORWARDED_ALLOW_IPS": "--forwarded-allow-ips"}
for _name, _flag in _REPLACED.items():
    if _name in os.environ:
        raise SystemExit(f"{_name} is no longer read: give gunicorn {_flag} on its command line "
                         "or in GUNICORN_CMD_ARGS")

try:
    _SWITCH_INTERVAL = float(os.environ.get("IMAGEDATA_SWITCH_INTERVAL") or 0.001)
    _switch_ok = 0 < _SWITCH_INTERVAL <= 1
except ValueError:
    _switch_ok = False
if not _switch_ok:
    raise SystemExit("IMAGEDATA_SWITCH_INTERVAL must be a number of seconds above 0 and at most 1 "
                     f"(got {os.environ.get('IMAGEDATA_SWITCH_INTERVAL')!r})")

bind = [b.strip() for b in os.environ.get("IMAGEDATA_BIND", "127.0.0.1:9292").split(",") if b.strip()]
workers = 2
# Threads keep slow clients from blocking a worker; uploads and downloads each hold one.
worker_class = "gthread"
threads = 16
# The worker heartbeat, not a request limit: long transfers run in threads and keep it alive.
timeout = 120
# On a stop, reload or restart, requests get this long to finish; uploads still running a
# little before it are cut cleanly (the image is queued again) and answered 503.
graceful_timeout = 30
keepalive = 5
# Header limits: oversized request lines and headers are refused by gunicorn (400/431).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# The service writes one access line per request itself (IMAGEDATA_LOG_FORMAT: text or json).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("IMAGEDATA_LOG_LEVEL", "info").lower()
if os.environ.get("IMAGEDATA_LOG_FORMAT", "").strip().lower() == "json":
    from imagedata.logs import gunicorn_logconfig

    logconfig_dict = gunicorn_logconfig("json", loglevel)
# sendfile stays on by leaving gunicorn's ``sendfile`` setting unset: the setting exists only
# to turn it off, and any value given here (even True) makes gunicorn copy every download
# through Python in blksize reads instead.
_data_dir = os.path.abspath(os.environ.get("IMAGEDATA_DATA_DIR", "var"))
# gunicorn's control socket defaults to one path per user, which two servers on one
# host would fight over: keep it in the data folder (disabled if the path is too long).
_control = os.path.join(_data_dir, "gunicorn.ctl")
control_socket = _control
control_socket_disable = len(_control) > 100
# Each server has its own metrics directory (prometheus-client's multiprocess mode).
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(_data_dir, "metrics")


def child_exit(server, worker):
    """A worker is gone (stopped, killed, reloaded): its uploads stop counting as in flight."""
    from imagedata import metrics

    metrics.mark_dead(worker.pid)


def on_starting(server):
    """Master start (not reloads), before any worker: an empty metrics directory shared by the
    workers to come; then set up or check the schema and recover uploads."""
    import sys

    from imagedata import metrics

    metrics.prepare_directory(_metrics_dir)
    os.environ[metrics.DIR_ENV] = _metrics_dir

    from imagedata.app import STARTUP_ERRORS, create_app, start_service

    try:
        start_service(create_app())
    except STARTUP_ERRORS as exc:
        server.log.error("imagedata cannot start: %s", exc)
        sys.exit(1)


def when_ready(server):
    """IMAGEDATA_AUTH=noauth: halt unless every socket the master really listens on is local."""
    # The guard is a small module without Flask; it does not load the app.
    from imagedata.server.noauth_guard import check_server

    check_server(server, os.environ.get("IMAGEDATA_AUTH", "").strip())


# glibc malloc tuning of each worker (see _tune_malloc).
MALLOC_ARENAS = 2
MALLOC_MMAP_THRESHOLD = 1 << 20


def _tune_malloc():
    """Keep a worker's memory from ratcheting up (glibc only; elsewhere nothing happens).

    glibc gives each new thread its own malloc arena (up to 8 per core), and every one of
    the 16 request threads then keeps its own free memory: the workers grew by ~30 MB per
    phase of concurrent transfers and never gave it back. It also raises its mmap threshold
    to the largest block freed so far, after which multi-megabyte buffers (S3 parts, bodies
    read by other servers' paths) come from the heap and stay resident. Two arenas and a
    fixed 1 MiB threshold keep RSS flat; large buffers are then mapped and unmapped.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return
    m_arena_max, m_mmap_threshold = -8, -3  # from glibc's malloc.h
    mallopt(m_arena_max, MALLOC_ARENAS)
    mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)


def pre_request(worker, req):
    """Answer ``Expect: 100-continue`` only when the body is read, so that a refusal reaches
    the client instead and it never sends the body."""
    from imagedata.server import adapter

    worker.log.debug("%s %s", req.method, req.path)
    adapter.defer_continue(req)


def post_request(worker, req, environ, resp):
    """After the answer is written: the lingering close of a refused body; a connection whose
    ``100 Continue`` was never sent does not serve another request."""
    from imagedata.server import adapter, linger

    adapter.settle_continue(req)
    linger.linger(environ)


def post_fork(server, worker):
    """Per-worker tuning that must happen in the worker process itself."""
    import sys

    from imagedata.server.noauth_guard import check_worker

    # A worker binds its own sockets with reuse_port, and a reload may change the binds.
    check_worker(worker, os.environ.get("IMAGEDATA_AUTH", "").strip())
    _tune_malloc()

    # Request threads wait for the GIL after every socket or database call; while
    # uploads hash in other threads, Python's 5 ms default hand-off dominated metadata
    # latency (GET image under four uploads: 584 req/s, p99 124 ms; at 1 ms: 918 req/s,
    # p99 81 ms, with the same upload and download rates, median of 3 bench runs).
    sys.setswitchinterval(_SWITCH_INTERVAL)


def post_worker_init(worker):
    """When this worker is told to stop, cut unfinished uploads before the graceful timeout;
    create its metrics now rather than after its first answer."""
    from imagedata import metrics
    from imagedata.server import drain

    drain.install(worker)
    metrics.get()
