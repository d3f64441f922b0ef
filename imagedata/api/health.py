"""Operations endpoints: /healthcheck (Glance's), /v2/info/health (admins) and /metrics."""
from __future__ import annotations

import ipaddress

from flask import Blueprint, Response, jsonify, request

from imagedata import metrics
from imagedata.api.common import no_body, services
from imagedata.auth.request import authenticate, current_caller
from imagedata.errors import Forbidden
from imagedata.service import health

bp = Blueprint("health", __name__)


@bp.get("/healthcheck")
def healthcheck():
    """Glance: 200 "OK" when usable; 503 with one line per problem otherwise (no auth)."""
    found = health.problems(services())
    if found:
        return "\n".join(found) + "\n", 503, {"Content-Type": "text/plain"}
    return "OK\n", 200, {"Content-Type": "text/plain"}


@bp.get("/v2/info/health")
@no_body
def health_detail():
    """The database and every store (writable, free bytes) as JSON; 503 when degraded."""
    authenticate()
    services().policy.enforce("stores_info_detail", current_caller())
    report = health.detailed_health(services())
    return jsonify(report), 200 if report["status"] == "ok" else 503


def _allowed_by_address() -> bool:
    """The direct client's address is in IMAGEDATA_METRICS_ALLOW.

    A request that came through a proxy (it carries X-Forwarded-For or Forwarded, which
    nginx adds) never qualifies: behind a proxy on this host every client would share its
    loopback address. Such requests need an admin token.
    """
    networks = services().settings.metrics_allow
    if not networks or "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.environ.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in networks)


@bp.get("/metrics")
@no_body
def metrics_page():
    """Prometheus metrics of every worker: for allowed addresses, or an admin's token."""
    if not _allowed_by_address():
        authenticate()
        if not current_caller().is_admin:
            raise Forbidden("Metrics are for administrators.")
    body, content_type = metrics.render(services().stores, services().cache)
    return Response(body, content_type=content_type)
