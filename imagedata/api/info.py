"""Discovery: /v2/info/stores, /v2/info/stores/detail, /v2/info/import, /v2/info/usage."""
from __future__ import annotations

from flask import Blueprint, jsonify

from imagedata.api.common import no_body, services
from imagedata.auth.request import authenticate, current_caller
from imagedata.service import quotas

bp = Blueprint("info", __name__, url_prefix="/v2/info")
bp.before_request(authenticate)


def _store_entry(store, detail: bool) -> dict:
    entry = {"id": store.store_id}
    if store.store_id == services().stores.default_id:
        entry["default"] = "true"  # Glance: a string, only on the default store
    if detail:
        entry.update({"type": store.kind, "weight": 0, "properties": store.describe()})
    return entry


@bp.get("/stores")
@no_body
def stores():
    """The configured stores, in configuration order, the default flagged."""
    return jsonify({"stores": [_store_entry(store, False) for store in services().stores]})


@bp.get("/stores/detail")
@no_body
def stores_detail():
    """Admins (or the service role) also see each store's type and properties."""
    services().policy.enforce("stores_info_detail", current_caller())
    return jsonify({"stores": [_store_entry(store, True) for store in services().stores]})


@bp.get("/import")
@no_body
def import_methods():
    """The interoperable import methods offered (IMAGEDATA_IMPORT_METHODS)."""
    return jsonify({"import-methods": {"description": "Import methods available.", "type": "array",
                                       "value": list(services().settings.import_methods)}})


@bp.get("/usage")
@no_body
def usage():
    """The caller's project's limits and usage."""
    return jsonify(quotas.usage_report(services().settings, current_caller().project_id))
