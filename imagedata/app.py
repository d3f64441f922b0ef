"""The application factory: config -> db -> stores -> blueprints -> error handlers -> CLI."""
from __future__ import annotations

import logging
import os
import uuid
from urllib.parse import urlsplit

from flask import Flask, g, request
from werkzeug.http import HTTP_STATUS_CODES

from imagedata import logs, metrics
from imagedata.api import (console, data, health, images, imports, info, links, members, metadefs, openapi,
                           schema_docs, tasks, versions)
from imagedata.api.cors import wrap_cors
from imagedata.api.connection import CloseAfterRefusedBody
from imagedata.api.errors import register_error_handlers
from imagedata.api.inputs import register_input_checks
from imagedata.auth.request import wrap_wsgi
from imagedata.cli.main import register_commands
from imagedata.config import ConfigError, Settings, load_settings
from imagedata.db import UNAVAILABLE_ERRORS, close_pool, database, init_database
from imagedata.errors import Forbidden
from imagedata.migrations import SchemaError, check_schema, current_version, sync_schema
from imagedata.server.noauth_guard import check_bind_setting, is_local_peer
from imagedata.server.observe import register_observer
from imagedata.policy import Policy, parse_overrides
from imagedata.service import Services, lifecycle
from imagedata.service.imports.convert import clear_work_area
from imagedata.stores import build_registry, prepare_stores

log = logging.getLogger("imagedata")

# Why a server may refuse to start: bad settings, the wrong schema, no database.
STARTUP_ERRORS = (ConfigError, SchemaError) + UNAVAILABLE_ERRORS


def create_app(env: dict | None = None, **overrides) -> Flask:
    """Build the WSGI app from the environment (or ``env``), with explicit ``overrides``."""
    settings = load_settings(env, **overrides)
    configure_logging(env, settings)
    check_noauth_binding(settings, env)
    app = Flask("imagedata")
    app.config["IMAGEDATA"] = settings
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.json.sort_keys = False
    os.makedirs(settings.data_dir, exist_ok=True)
    init_database(settings.database_url, settings.db_busy_timeout_ms)
    stores = build_registry(settings)
    prepare_stores(stores)
    app.extensions["imagedata"] = Services(settings, Policy(parse_overrides(settings.policy),
                                                            settings.data_admin_only), stores)
    register_request_hooks(app)
    register_input_checks(app)
    for blueprint in (versions.bp, health.bp, openapi.bp, images.bp, data.bp, links.bp, members.bp, info.bp,
                      schema_docs.bp, tasks.bp, imports.bp, console.bp, console.api_bp, *metadefs.BLUEPRINTS):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    register_commands(app)
    app.wsgi_app = wrap_cors(versions.VersionPrefixMiddleware(CloseAfterRefusedBody(wrap_wsgi(app.wsgi_app, settings))),
                             settings.cors_allowed_origins)
    register_observer(app)
    if settings.auth == "noauth":
        app.before_request(refuse_remote_peer)
        log.warning("AUTHENTICATION IS OFF (IMAGEDATA_AUTH=noauth): every caller is an admin. "
                    "Use this only on loopback for local work.")
    return app


def start_service(app: Flask) -> None:
    """A server's start-up work, once, before it serves (gunicorn's master runs it).

    An empty database gets the schema; a database on another schema version makes the
    server refuse to start (SchemaError: upgrades are ``imagedata db-sync``'s job). Then
    uploads whose process died are returned to ``queued``, and what conversions of dead
    processes left in the work area is removed.
    """
    services = app.extensions["imagedata"]
    try:
        with database.connection_context():
            empty = current_version() is None
        if empty:
            sync_schema()
        with database.connection_context():
            check_schema()
            metrics.count_recoveries(len(lifecycle.recover(services)))
        clear_work_area(services.settings.data_dir)  # conversions of processes that died (none runs yet)
    finally:
        close_pool()  # no connection may be shared with the workers forked after this


def configure_logging(env: dict | None, settings: Settings) -> None:
    """Log to stderr (gunicorn captures it) at IMAGEDATA_LOG_LEVEL, default INFO, as text or JSON;
    the store credentials and the database password never appear in a line."""
    level = (env if env is not None else os.environ).get("IMAGEDATA_LOG_LEVEL", "INFO").upper()
    logs.configure_logging(level, settings.log_format)
    for store in settings.stores:
        if store.s3 is not None:
            logs.register_secrets(store.s3.access_key, store.s3.secret_key)
    logs.register_secrets(urlsplit(settings.database_url).password, settings.link_secret or None)


def check_noauth_binding(settings: Settings, env: dict | None) -> None:
    """noauth refuses to start when IMAGEDATA_BIND names a non-loopback address.

    This checks what the operator declared, early and under any server. The sockets gunicorn
    really listens on are checked by its hooks (``imagedata.server.noauth_guard``, wired in
    gunicorn.conf.py), and every request's peer by ``refuse_remote_peer``.
    """
    if settings.auth != "noauth":
        return
    bind = (env if env is not None else os.environ).get("IMAGEDATA_BIND", "127.0.0.1:9292")
    public = check_bind_setting(bind)
    if public:
        raise ConfigError(f"IMAGEDATA_AUTH=noauth refuses to start: IMAGEDATA_BIND {', '.join(public)!r} "
                          "is not loopback")


def refuse_remote_peer() -> None:
    """noauth: a caller on another host is refused, whatever the server was told to listen on."""
    if not is_local_peer(request.remote_addr):
        raise Forbidden("Authentication is off on this server (IMAGEDATA_AUTH=noauth); it serves only callers "
                        "on this host.")


def register_request_hooks(app: Flask) -> None:
    """Per-request database connection and the x-openstack-request-id header."""

    @app.before_request
    def open_connection():
        incoming = request.headers.get("X-Openstack-Request-ID", "")
        if incoming and len(incoming) <= 64 and incoming.isprintable():
            g.request_id = incoming if incoming.startswith("req-") else f"req-{incoming}"
        else:
            g.request_id = f"req-{uuid.uuid4()}"
        database.connect(reuse_if_open=True)

    @app.after_request
    def add_request_id(response):
        response.headers["x-openstack-request-id"] = g.get("request_id") or f"req-{uuid.uuid4()}"
        phrase = HTTP_STATUS_CODES.get(response.status_code)
        if phrase:  # "404 Not Found", as Glance writes it, not werkzeug's upper case
            response.status = f"{response.status_code} {phrase}"
        return response

    @app.teardown_request
    def close_connection(exc):
        if not database.is_closed():
            database.close()
