"""Is the service usable: the database answers, each store can take data (and its free bytes).

Load balancers poll health every second or two, so the answers are cheap: a good database
answer is reused for a few seconds (a failing one never is, so recovery shows at once), and
each store caches its own probe as its driver sees fit.
"""
from __future__ import annotations

import dataclasses
import datetime
import threading
import time

from imagedata.models import Image
from imagedata.service import Services

DATABASE_TTL = 3.0
DETAIL_TTL = 5.0


@dataclasses.dataclass(frozen=True)
class Check:
    """One component's state."""

    ok: bool
    problem: str | None = None
    latency_ms: float | None = None


class _Memo:
    """A value reused for ``ttl`` seconds, shared by the threads of a process."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self.lock = threading.Lock()
        self.value = None
        self.at = 0.0

    def get(self, compute, keep=lambda value: True):
        """The fresh value, or ``compute()`` (kept only when ``keep(value)``)."""
        if self.value is not None and time.monotonic() - self.at < self.ttl:
            return self.value
        with self.lock:
            if self.value is not None and time.monotonic() - self.at < self.ttl:
                return self.value
            value = compute()
            if keep(value):
                self.value, self.at = value, time.monotonic()
            else:
                self.value = None
            return value


def _memo(svc: Services, name: str, ttl: float) -> _Memo:
    """The memo of one answer for one wired service (apps in one process do not share)."""
    memos = svc.__dict__.setdefault("_health_memos", {})
    if name not in memos:
        memos[name] = _Memo(ttl)
    return memos[name]


def _probe_database() -> Check:
    started = time.monotonic()
    try:
        Image.select().limit(1).count()
    except Exception as exc:
        return Check(False, f"unavailable ({type(exc).__name__})")
    return Check(True, latency_ms=round((time.monotonic() - started) * 1000, 2))


def check_database(svc: Services) -> Check:
    """Whether the database answers a query (good answers cached for a few seconds)."""
    return _memo(svc, "database", DATABASE_TTL).get(_probe_database, keep=lambda check: check.ok)


def problems(svc: Services) -> list[str]:
    """What makes the service unusable right now, one short line each (empty: healthy)."""
    found = []
    if not check_database(svc).ok:
        found.append("database: unavailable")
    for store in svc.stores:
        problem = store.health().problem
        if problem:
            found.append(f"store {store.store_id}: {problem}")
    return found


def _build_detail(svc: Services) -> dict:
    database = check_database(svc)
    stores = []
    for store in svc.stores:
        health = store.health()
        stores.append({"id": store.store_id, "type": store.kind, "default": store.store_id == svc.stores.default_id,
                       "writable": health.problem is None, "problem": health.problem,
                       "free_bytes": health.free_bytes})
    healthy = database.ok and all(entry["writable"] for entry in stores)
    report = {"status": "ok" if healthy else "degraded",
              "checked_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "cached_for_seconds": DETAIL_TTL,
              "database": {"reachable": database.ok, "problem": database.problem, "latency_ms": database.latency_ms},
              "stores": stores}
    if svc.cache is not None:
        report["cache"] = _cache_detail(svc.cache)
    return report


def _cache_detail(cache) -> dict:
    """This host's image cache: its limit, what it holds, and a problem if its index cannot
    be read (downloads then go to the store: the cache never makes the service degraded)."""
    detail = {"dir": cache.layout.root, "max_bytes": cache.max_bytes, "free_disk_bytes": cache.free_disk_bytes()}
    try:
        usage = cache.usage()
    except Exception as exc:
        return {**detail, "problem": f"index unreadable ({type(exc).__name__})"}
    return {**detail, "used_bytes": usage.used_bytes, "cached_bytes": usage.cached_bytes,
            "cached_images": usage.cached_images, "fills": usage.fills, "queued_images": usage.queued,
            "problem": None}


def detailed_health(svc: Services) -> dict:
    """The database and every store, for admins (computed at most every few seconds)."""
    return _memo(svc, "detail", DETAIL_TTL).get(lambda: _build_detail(svc))
