"""The cache's index: one SQLite file beside the copies, shared by every process of the host.

It holds a row per cached image (``cached``) and per fill in progress (``filling``, whose
size is reserved before its first byte is fetched), each with the identity of the data it
holds (the image's size and digests when the fill began: a copy serves only the image whose
record still says so), and the prefetch queue. Space is
taken in one write transaction that also evicts the least recently used copies, so the
sum of the rows never passes the limit, whatever the processes do at the same moment.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from typing import Callable, Iterable, NamedTuple

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        image_id TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        state TEXT NOT NULL,
        hits INTEGER NOT NULL DEFAULT 0,
        last_accessed REAL NOT NULL,
        last_modified REAL NOT NULL,
        identity TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS entries_lru ON entries (state, last_accessed)",
    "CREATE TABLE IF NOT EXISTS queue (image_id TEXT PRIMARY KEY, queued_at REAL NOT NULL)",
)
BUSY_TIMEOUT_MS = 30000
# The index's layout (PRAGMA user_version): an index of another layout is dropped at start (its
# copies are then unknown, and removed by ``ImageCache.recover``): a cache is only a cache.
INDEX_VERSION = 2


class Entry(NamedTuple):
    """One row: a cached image or a fill in progress."""

    image_id: str
    size: int
    state: str  # "cached" or "filling"
    hits: int
    last_accessed: float
    last_modified: float
    identity: str  # ImageFacts.identity of the data the copy holds


class Usage(NamedTuple):
    """What the cache holds: bytes and images cached, and fills in progress."""

    cached_bytes: int
    cached_images: int
    filling_bytes: int
    fills: int
    queued: int

    @property
    def used_bytes(self) -> int:
        """Bytes counted against the limit (copies and reservations)."""
        return self.cached_bytes + self.filling_bytes


class CacheIndex:
    """The index file; a connection per thread (and per process: never shared across fork)."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous = NORMAL")
        self._local.held = (os.getpid(), db)
        return db

    def prepare(self) -> None:
        """Create the tables (write-ahead log: readers never wait for a writer), replacing an
        index of another layout."""
        db = self._db()
        db.execute("PRAGMA journal_mode = WAL")
        with self._write() as db:
            if db.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
                db.execute("DROP TABLE IF EXISTS entries")
                db.execute("DROP TABLE IF EXISTS queue")
            for statement in SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {INDEX_VERSION}")

    @contextlib.contextmanager
    def _write(self):
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def identity_of(self, image_id: str) -> str | None:
        """The identity recorded for an image's copy or fill, or None when it has no row."""
        row = self._db().execute("SELECT identity FROM entries WHERE image_id = ?", (image_id,)).fetchone()
        return row[0] if row else None

    def touch(self, image_id: str, identity: str) -> bool:
        """Count a download served from the copy; False when no cached row of this identity names it."""
        with self._write() as db:
            return db.execute("UPDATE entries SET hits = hits + 1, last_accessed = ? WHERE image_id = ? AND "
                              "state = 'cached' AND identity = ?", (time.time(), image_id, identity)).rowcount == 1

    def reserve(self, image_id: str, size: int, identity: str, limit: int,
                fill_alive: Callable[[str], bool]) -> list[Entry] | None:
        """Take ``size`` bytes for a fill of ``image_id``, evicting the least recently used
        copies as needed; the evicted rows (whose files the caller removes), or None when the
        fills in progress leave no room. Rows of fills whose thread is gone are dropped first."""
        with self._write() as db:
            for (other,) in db.execute("SELECT image_id FROM entries WHERE state = 'filling' AND image_id != ?",
                                       (image_id,)).fetchall():
                if not fill_alive(other):
                    db.execute("DELETE FROM entries WHERE image_id = ? AND state = 'filling'", (other,))
            db.execute("DELETE FROM entries WHERE image_id = ?", (image_id,))
            used = db.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()[0]
            evicted = []
            if used + size > limit:
                for row in db.execute("SELECT * FROM entries WHERE state = 'cached' ORDER BY last_accessed, image_id"):
                    evicted.append(Entry(*row))
                    used -= row[1]
                    if used + size <= limit:
                        break
                if used + size > limit:
                    return None  # (the rows of dead fills stay dropped)
                db.executemany("DELETE FROM entries WHERE image_id = ?", [(e.image_id,) for e in evicted])
            now = time.time()
            db.execute("INSERT INTO entries VALUES (?, ?, 'filling', 0, ?, ?, ?)", (image_id, size, now, now, identity))
            return evicted

    def shrink(self, limit: int) -> list[Entry]:
        """Evict the least recently used copies until the rows fit ``limit`` (after the limit
        was lowered); the evicted rows."""
        evicted = []
        with self._write() as db:
            used = db.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()[0]
            for row in db.execute("SELECT * FROM entries WHERE state = 'cached' ORDER BY last_accessed, image_id"):
                if used <= limit:
                    break
                evicted.append(Entry(*row))
                used -= row[1]
            db.executemany("DELETE FROM entries WHERE image_id = ?", [(e.image_id,) for e in evicted])
        return evicted

    def mark_cached(self, image_id: str) -> bool:
        """A fill is done: its row becomes a cached copy and leaves the queue; False if the row
        was dropped meanwhile (the copy must then go too)."""
        now = time.time()
        with self._write() as db:
            db.execute("DELETE FROM queue WHERE image_id = ?", (image_id,))
            return db.execute("UPDATE entries SET state = 'cached', last_accessed = ?, last_modified = ? "
                              "WHERE image_id = ? AND state = 'filling'", (now, now, image_id)).rowcount == 1

    def release(self, image_id: str) -> None:
        """A fill failed: give its reservation back."""
        with self._write() as db:
            db.execute("DELETE FROM entries WHERE image_id = ? AND state = 'filling'", (image_id,))

    def forget(self, image_ids: Iterable[str], state: str | None = None) -> list[str]:
        """Drop the rows of these images (of any state, or only ``state``); the ids dropped."""
        dropped = []
        with self._write() as db:
            for image_id in image_ids:
                query = "DELETE FROM entries WHERE image_id = ?" + (" AND state = ?" if state else "")
                if db.execute(query, (image_id, state) if state else (image_id,)).rowcount:
                    dropped.append(image_id)
        return dropped

    def entries(self, state: str | None = "cached") -> list[Entry]:
        """Rows of one state (None: all), by image id."""
        where, args = ("WHERE state = ?", (state,)) if state else ("", ())
        return [Entry(*row) for row in self._db().execute(f"SELECT * FROM entries {where} ORDER BY image_id", args)]

    def usage(self) -> Usage:
        """Totals for metrics and health."""
        db = self._db()
        totals = dict.fromkeys(("cached", "filling"), (0, 0))
        for state, total, count in db.execute("SELECT state, COALESCE(SUM(size), 0), COUNT(*) FROM entries "
                                              "GROUP BY state"):
            totals[state] = (total, count)
        queued = db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
        return Usage(totals["cached"][0], totals["cached"][1], totals["filling"][0], totals["filling"][1], queued)

    def enqueue(self, image_id: str) -> None:
        """Queue an image for prefetching (once)."""
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO queue VALUES (?, ?)", (image_id, time.time()))

    def dequeue(self, image_ids: Iterable[str]) -> int:
        """Take images off the queue; how many were on it."""
        with self._write() as db:
            return sum(db.execute("DELETE FROM queue WHERE image_id = ?", (i,)).rowcount for i in image_ids)

    def queued(self) -> list[str]:
        """The queue, oldest first."""
        return [row[0] for row in self._db().execute("SELECT image_id FROM queue ORDER BY queued_at, image_id")]
