"""The store contract every driver implements; drivers translate their errors into these.

The service layer knows only this contract. An image's data is one object per store,
named by the image id and the upload attempt that wrote it. An upload in progress is a
writer whose ``state`` (a short string the driver understands) says what a crash would
leave behind; the service records it on the image row, so that ``remove`` can clean up
after any attempt from any host. Reads are by byte range; a reader may offer fast paths
(a local file for sendfile, a name for X-Accel-Redirect) that the download layer asks for.
"""
from __future__ import annotations

import dataclasses
import re
import threading
import time
from typing import Callable, Iterator, NamedTuple, Protocol

# Image ids are lowercase UUIDs; nothing else ever becomes part of an object name.
IMAGE_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ATTEMPT_RE = re.compile(r"^[0-9a-f]{32}$")
READ_PIECE = 1 << 20


class DataMissing(Exception):
    """The store holds no data for this image."""


class StoredObject(NamedTuple):
    """One thing found in a store by a scan: final data or an unfinished upload."""

    name: str  # how the operator sees it (a file name, an object key)
    kind: str  # "data" (final), "unfinished" (an upload not yet committed) or "unknown"
    image_id: str  # "" when the name is not ours
    attempt: str  # the upload attempt that wrote it ("" when unknown)
    size: int
    age_seconds: float
    state: str = ""  # for unfinished objects: the writer state that describes it


@dataclasses.dataclass(frozen=True)
class StoreHealth:
    """What a health check found: a problem (None when usable) and the free bytes if known."""

    problem: str | None
    free_bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class Kept:
    """The bytes an interrupted attempt kept for a resume: its writer state and their count."""

    state: str
    size: int


def check_image_id(image_id: str) -> str:
    """Return ``image_id`` if it is a canonical lowercase UUID, else raise ValueError."""
    if not isinstance(image_id, str) or not IMAGE_ID_RE.match(image_id):
        raise ValueError("not an image id")
    return image_id


def check_attempt(attempt: str) -> str:
    """Return ``attempt`` if it is an upload attempt id (32 hex digits), else raise ValueError."""
    if not isinstance(attempt, str) or not ATTEMPT_RE.match(attempt):
        raise ValueError("not an upload attempt id")
    return attempt


def data_name(image_id: str, attempt: str) -> str:
    """The object name of the data written by one upload attempt."""
    return f"{check_image_id(image_id)}.{check_attempt(attempt)}"


def split_data_name(text: str) -> tuple[str, str] | None:
    """(image id, attempt) of a data object name, or None if it is not one of ours."""
    image_id, _, attempt = text.partition(".")
    if IMAGE_ID_RE.match(image_id) and ATTEMPT_RE.match(attempt):
        return image_id, attempt
    return None


class StoreWriter(Protocol):
    """An upload in progress: bytes go to an unfinished object until ``commit``."""

    state: str  # what a crash now would leave behind (recorded on the image row)
    offset: int  # bytes held so far, including a resumed prefix

    def write(self, data: memoryview) -> None:
        """Append all of ``data``; raises StoreFull or StoreUnavailable.

        The buffer is only lent for the call: the caller refills it as soon as ``write``
        returns, so a writer that still needs the bytes afterwards must copy them.
        """

    def commit(self) -> None:
        """Make the data durable and visible as the attempt's final object."""

    def abort(self) -> None:
        """Discard everything this writer holds; never raises."""

    def suspend(self) -> str | None:
        """Keep the bytes written so far durably for a later attempt and return the state
        that names them (for ``Kept`` and ``remove``); None if nothing was kept."""

    def kept(self) -> Iterator[bytes]:
        """For a resumed writer: the bytes it started with (to recompute digests)."""


class DataReader(Protocol):
    """An opened byte range of an object: its total size is known before any byte is sent."""

    size: int  # the size of the whole stored object
    accel_name: str | None  # fast path: the name nginx serves the object under (X-Accel-Redirect)

    def __iter__(self) -> Iterator[bytes]:
        """The requested bytes, in pieces of at most about 1 MiB."""

    def local_file(self):
        """Fast path: a real file positioned at the range start (for sendfile), or None."""

    def close(self) -> None:
        """Release the file or connection; idempotent."""


class Store(Protocol):
    """A place image data lives, chosen per request by its configured id."""

    store_id: str
    kind: str

    def prepare(self) -> None:
        """Start-up checks and set-up (a missing folder created, a missing bucket refused)."""

    def open_writer(self, image_id: str, attempt: str, expected_size: int | None,
                    kept: Kept | None = None) -> StoreWriter:
        """Start writing the data of one upload attempt, continuing what ``kept`` names (an
        earlier attempt's suspended bytes) if given; DataMissing if those are gone."""

    def open_range(self, image_id: str, attempt: str, start: int, length: int) -> DataReader:
        """Open ``length`` bytes from ``start`` of an attempt's data; DataMissing if absent."""

    def remove(self, image_id: str, attempt: str, state: str | None = None) -> bool:
        """Remove everything one attempt may have left: its final data, its unfinished object
        (found by name even when no state was recorded), and what ``state`` names (an
        unfinished upload, kept bytes); True if something was removed."""

    def scan(self) -> Iterator[StoredObject]:
        """Everything the store holds, finished or not, for scrubbing and recovery."""

    def remove_object(self, obj: StoredObject) -> bool:
        """Remove one object found by ``scan``; False if the driver leaves it alone."""

    def health(self) -> StoreHealth:
        """Whether the store can take data now (cached for a few seconds; cheap)."""

    def location(self, image_id: str, attempt: str) -> str:
        """Where an attempt's data lives, for operators (a path or a URL without secrets)."""

    def describe(self) -> dict:
        """Driver properties for the admin store listing (never a secret)."""


class CachedHealth:
    """A health probe run at most once per ``ttl`` seconds, shared by all threads."""

    def __init__(self, probe: Callable[[], StoreHealth], ttl: float = 5.0):
        self.probe = probe
        self.ttl = ttl
        self.lock = threading.Lock()
        self.value: StoreHealth | None = None
        self.checked = 0.0

    def get(self) -> StoreHealth:
        """The last result if fresh, else a new probe."""
        now = time.monotonic()
        if self.value is not None and now - self.checked < self.ttl:
            return self.value
        with self.lock:
            if self.value is None or time.monotonic() - self.checked >= self.ttl:
                try:
                    self.value = self.probe()
                except Exception as exc:  # a probe must not break the caller
                    self.value = StoreHealth(f"health check failed ({type(exc).__name__})")
                self.checked = time.monotonic()
            return self.value

    def forget(self) -> None:
        """Make the next ``get`` probe again (after a write failed, say)."""
        self.checked = 0.0
