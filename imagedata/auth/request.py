"""Who is calling: resolved once per request from the configured auth mode."""
from __future__ import annotations

import logging

from flask import current_app, g, request

from imagedata.config import ConfigError, Settings
from imagedata.errors import ServiceUnavailable, Unauthorized
from imagedata.policy import Caller
from imagedata.service.tokens import check_token

log = logging.getLogger(__name__)

NOAUTH_CALLER = Caller.with_roles("local-admin", "local", ["admin"])
AUTH_REQUIRED = "The request you have made requires authentication."
# The challenge of a 401 in token and trusted-headers modes: the header that carries the token.
# (Keystone mode: keystonemiddleware sends its own, ``Keystone uri="<www_authenticate_uri>"``.)
TOKEN_CHALLENGE = 'X-Auth-Token realm="imagedata"'
# Set by imagedata.auth.keystone on a request whose tokens Keystone could not be asked about.
KEYSTONE_UNREACHABLE_KEY = "imagedata.auth.keystone_unreachable"


def authenticate() -> None:
    """before_request hook for the API blueprints: sets ``g.caller`` or raises 401."""
    mode = current_app.config["IMAGEDATA"].auth
    if mode == "noauth":
        g.caller = NOAUTH_CALLER
        return
    if mode == "trusted-headers":
        g.caller = _caller_from_headers()
        return
    if mode == "keystone":
        g.caller = _caller_from_keystone()
        return
    caller, reason = check_token(request.headers.get("X-Auth-Token"))
    if caller is None:
        raise refused(reason)
    g.caller = caller


def refused(reason: str, challenge: str | None = TOKEN_CHALLENGE) -> Unauthorized:
    """A 401 with its challenge; the log says why (never with the token itself)."""
    log.info("401 on %s %s: %s", request.method, request.path, reason)
    return Unauthorized(AUTH_REQUIRED, headers={"WWW-Authenticate": challenge} if challenge else None)


def _caller_from_headers(challenge: str | None = TOKEN_CHALLENGE) -> Caller:
    """Identity set by an authenticating proxy (which must strip these from clients)."""
    status = request.headers.get("X-Identity-Status")
    if status != "Confirmed":
        if challenge is None:  # keystone mode: keystonemiddleware set the status
            reason = ("no X-Auth-Token header" if not request.headers.get("X-Auth-Token") else
                      "Keystone did not accept the token (invalid, expired or revoked)")
        else:
            reason = f"X-Identity-Status is {status or 'missing'}, not Confirmed (the proxy did not authenticate)"
        raise refused(reason, challenge)
    project = request.headers.get("X-Project-Id") or request.headers.get("X-Tenant-Id") or None
    user = request.headers.get("X-User-Id") or request.headers.get("X-User") or None
    roles = (request.headers.get("X-Roles") or "").split(",")
    return Caller.with_roles(user, project, roles)


def _caller_from_keystone() -> Caller:
    """Identity from keystonemiddleware's auth_token (which removed any the client sent).

    A service token (``X-Service-Token``, as Nova sends it) that was sent must be valid and
    carry one of ``service_token_roles``; it then also lets auth_token accept an expired
    user token. The caller is always the user: the service token grants no roles.
    """
    if request.environ.get(KEYSTONE_UNREACHABLE_KEY):
        raise ServiceUnavailable("The identity service (Keystone) could not be reached to validate "
                                 "the token; try again later.")
    # Glance: X-Service-Identity-Status is absent when no service token was sent.
    if request.headers.get("X-Service-Identity-Status", "Confirmed") != "Confirmed":
        raise refused("Keystone did not accept the X-Service-Token (invalid, expired, or without a service "
                      "role)", None)
    return _caller_from_headers(None)


def wrap_wsgi(wsgi_app, settings: Settings):
    """The WSGI layer the auth mode needs in front of the app (keystone: auth_token)."""
    if settings.auth != "keystone":
        return wsgi_app
    try:
        from imagedata.auth.keystone import wrap_auth_token  # optional extra: imagedata[keystone]
    except ImportError as exc:
        raise ConfigError(f"IMAGEDATA_AUTH=keystone needs the keystone extra "
                          f"(pip install 'imagedata[keystone]'): {exc}") from None
    return wrap_auth_token(wsgi_app, settings.keystone_config)


def current_caller() -> Caller:
    """The caller of the current request (set by ``authenticate``)."""
    return g.caller
