"""Who is calling: resolved once per request from the configured auth mode."""
from __future__ import annotations

import logging

from flask import current_app, g, request

from imagedata.errors import Unauthorized
from imagedata.policy import Caller
from imagedata.service.tokens import caller_for_token

log = logging.getLogger(__name__)

NOAUTH_CALLER = Caller.with_roles("local-admin", "local", ["admin"])


def authenticate() -> None:
    """before_request hook for the API blueprints: sets ``g.caller`` or raises 401."""
    mode = current_app.config["IMAGEDATA"].auth
    if mode == "noauth":
        g.caller = NOAUTH_CALLER
        return
    if mode == "trusted-headers":
        g.caller = _caller_from_headers()
        return
    caller = caller_for_token(request.headers.get("X-Auth-Token"))
    if caller is None:
        raise Unauthorized("The request you have made requires authentication.")
    g.caller = caller


def _caller_from_headers() -> Caller:
    """Identity set by an authenticating proxy (which must strip these from clients)."""
    if request.headers.get("X-Identity-Status") != "Confirmed":
        raise Unauthorized("The request you have made requires authentication.")
    project = request.headers.get("X-Project-Id") or request.headers.get("X-Tenant-Id") or None
    user = request.headers.get("X-User-Id") or request.headers.get("X-User") or None
    roles = (request.headers.get("X-Roles") or "").split(",")
    return Caller.with_roles(user, project, roles)


def current_caller() -> Caller:
    """The caller of the current request (set by ``authenticate``)."""
    return g.caller
