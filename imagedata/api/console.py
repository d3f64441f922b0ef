"""The web console: its static files at /console/, and the few calls it needs beyond the API.

The files are plain HTML, CSS and JavaScript modules shipped in the package
(``imagedata/console/``): no build step, nothing loaded from elsewhere. The page keeps the
token in the tab's session storage and sends it as ``X-Auth-Token``; no cookie is ever set,
so no other site can ride on a signed-in console.
"""
from __future__ import annotations

import os

from flask import Blueprint, jsonify, redirect, send_from_directory

from imagedata import __version__
from imagedata.api.common import no_body, read_json, services
from imagedata.auth.keystone_login import check_form, identity_url, keystone_login
from imagedata.auth.request import authenticate, current_caller
from imagedata.errors import NotFound
from imagedata.service import quotas, tokens

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "console")
# The page loads only its own files and talks only to its own origin; nobody may frame it;
# signed links in the page are never sent on as a Referer.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                                           "base-uri 'none'; form-action 'self'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache"}

bp = Blueprint("console", __name__, url_prefix="/console")
api_bp = Blueprint("console_api", __name__, url_prefix="/console/api")


@bp.get("")
def console_root():
    """/console: to /console/ (the page's relative URLs need the slash)."""
    return redirect("/console/", 308)


@bp.get("/")
@bp.get("/<path:name>")
def console_file(name: str = "index.html"):
    """A file of the console (index.html for the root)."""
    if name.startswith("api/"):
        raise NotFound("No such console call.")
    response = send_from_directory(STATIC_DIR, name, max_age=0)
    response.headers.update(PAGE_HEADERS)
    return response


@api_bp.get("/config")
@no_body
def console_config():
    """How to sign in (the auth mode) and the limits the forms need; no token needed."""
    settings = services().settings
    return jsonify({"auth": settings.auth, "version": __version__, "link_max_seconds": settings.link_max_seconds,
                    "stores": [store.store_id for store in services().stores],
                    "import_methods": list(settings.import_methods)})


@api_bp.get("/whoami")
@no_body
def whoami():
    """The caller as the service sees them: user, project, roles."""
    authenticate()
    caller = current_caller()
    return jsonify({"user": caller.user_id, "project": caller.project_id, "roles": sorted(caller.roles),
                    "admin": caller.is_admin})


@api_bp.post("/session")
def keystone_session():
    """Keystone mode: sign in with user name, password, project and domain; answers the token."""
    settings = services().settings
    if settings.auth != "keystone":
        raise NotFound("Sign-in with a password is for IMAGEDATA_AUTH=keystone.")
    form = check_form(read_json())
    return jsonify(keystone_login(identity_url(settings.keystone_config), form)), 201


@api_bp.get("/projects")
@no_body
def project_quotas():
    """Admins: every project's limits and usage."""
    _admin("manage_quota")
    return jsonify({"projects": quotas.project_reports(services().settings)})


@api_bp.put("/projects/<project>/quota")
def set_project_quota(project):
    """Admins: set a project's limits (bytes and counts; 0 means unlimited)."""
    _admin("manage_quota")
    body = read_json()
    values = quotas.check_limits(body)
    quotas.set_quota(project, **values)
    return jsonify({"project": project, **quotas.usage_report(services().settings, project)})


@api_bp.get("/tokens")
@no_body
def token_list():
    """Admins (token mode): every token's id, owner, roles, expiry and state."""
    _admin("manage_tokens", tokens_only=True)
    return jsonify({"tokens": [tokens.describe(row) for row in tokens.list_tokens()]})


@api_bp.post("/tokens")
def token_create():
    """Admins (token mode): a new token; its secret is in this answer only."""
    _admin("manage_tokens", tokens_only=True)
    project, user, roles, expires_in = tokens.check_request(read_json())
    row, secret = tokens.create_token(project, user, roles, expires_in)
    return jsonify({**tokens.describe(row), "token": secret}), 201


@api_bp.delete("/tokens/<token_id>")
@no_body
def token_revoke(token_id):
    """Admins (token mode): revoke a token (and every download link it made)."""
    _admin("manage_tokens", tokens_only=True)
    if not tokens.revoke_token(token_id):
        raise NotFound(f"No token with id {token_id[:32]!r}.")
    return "", 204


def _admin(rule: str, tokens_only: bool = False) -> None:
    authenticate()
    services().policy.enforce(rule, current_caller())
    if tokens_only and services().settings.auth != "token":
        raise NotFound(f"Tokens are managed here only with IMAGEDATA_AUTH=token (this service uses "
                       f"{services().settings.auth}).")
