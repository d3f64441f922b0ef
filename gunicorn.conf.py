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
sendfile = True
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


def post_fork(server, worker):
    """Per-worker tuning that must happen in the worker process itself."""
    import sys

    # Request threads wait for the GIL after every socket or database call; while
    # uploads hash in other threads the 5 ms default hand-off dominates metadata
    # latency. A smaller interval (e.g. 0.001) trades upload speed for latency.
    if os.environ.get("IMAGEDATA_SWITCH_INTERVAL"):
        sys.setswitchinterval(float(os.environ["IMAGEDATA_SWITCH_INTERVAL"]))
