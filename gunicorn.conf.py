"""Production gunicorn settings, read from the environment (no app imports here)."""
import os

bind = [b.strip() for b in os.environ.get("IMAGEDATA_BIND", "127.0.0.1:9292").split(",") if b.strip()]
workers = int(os.environ.get("IMAGEDATA_WORKERS", "2"))
# Threads keep slow clients from blocking a worker; uploads and downloads each hold one.
worker_class = "gthread"
threads = int(os.environ.get("IMAGEDATA_THREADS", "16"))
# The worker heartbeat, not a request limit: long transfers run in threads and keep it alive.
timeout = int(os.environ.get("IMAGEDATA_WORKER_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("IMAGEDATA_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Header limits: oversized request lines and headers are refused by gunicorn (400/431).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = os.environ.get("IMAGEDATA_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("IMAGEDATA_LOG_LEVEL", "info").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms req=%({x-openstack-request-id}o)s'
# Trust X-Forwarded-* only from a proxy on this host.
forwarded_allow_ips = os.environ.get("IMAGEDATA_FORWARDED_ALLOW_IPS", "127.0.0.1")
# sendfile stays on by leaving gunicorn's ``sendfile`` setting unset: the setting exists only
# to turn it off, and any value given here (even True) makes gunicorn copy every download
# through Python in blksize reads instead.
# gunicorn's control socket defaults to one path per user, which two servers on one
# host would fight over: keep it in the data folder (disabled if the path is too long).
_control = os.path.join(os.path.abspath(os.environ.get("IMAGEDATA_DATA_DIR", "var")), "gunicorn.ctl")
control_socket = _control
control_socket_disable = len(_control) > 100


def on_starting(server):
    """Once, in the master before any worker starts: set up or check the schema, recover uploads."""
    import sys

    from imagedata.app import STARTUP_ERRORS, create_app, start_service

    try:
        start_service(create_app())
    except STARTUP_ERRORS as exc:
        server.log.error("imagedata cannot start: %s", exc)
        sys.exit(1)


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


def post_fork(server, worker):
    """Per-worker tuning that must happen in the worker process itself."""
    import sys

    _tune_malloc()

    # Request threads wait for the GIL after every socket or database call; while
    # uploads hash in other threads the 5 ms default hand-off dominates metadata
    # latency. A smaller interval (e.g. 0.001) trades upload speed for latency.
    if os.environ.get("IMAGEDATA_SWITCH_INTERVAL"):
        sys.setswitchinterval(float(os.environ["IMAGEDATA_SWITCH_INTERVAL"]))
