"""The store contract every driver implements; drivers translate OS errors into these."""
from __future__ import annotations

import re
from typing import BinaryIO, Iterator, NamedTuple, Protocol

# Image ids are lowercase UUIDs; nothing else ever becomes part of a path.
IMAGE_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ATTEMPT_RE = re.compile(r"^[0-9a-f]{32}$")

class DataMissing(Exception):
    """The store holds no data for this image."""


class StoredObject(NamedTuple):
    """One object found in a store by a scan: final data or an unfinished upload."""

    name: str
    kind: str  # "data" (final), "partial" (an upload's temporary file) or "unknown"
    image_id: str  # "" when the name is not ours
    attempt: str  # the upload attempt of a partial object, else ""
    size: int
    age_seconds: float


def check_image_id(image_id: str) -> str:
    """Return ``image_id`` if it is a canonical lowercase UUID, else raise ValueError."""
    if not isinstance(image_id, str) or not IMAGE_ID_RE.match(image_id):
        raise ValueError("not an image id")
    return image_id


class StoreWriter(Protocol):
    """An upload in progress: bytes go to a temporary object until commit."""

    def write(self, data: memoryview) -> None:
        """Append bytes; raises StoreFull or StoreUnavailable."""

    def commit(self) -> None:
        """Make the data durable and visible under the image's final name."""

    def abort(self) -> None:
        """Discard the temporary object; never raises."""


class Store(Protocol):
    """A place image data lives. Chosen per request by its configured id."""

    store_id: str
    kind: str

    def open_writer(self, image_id: str, attempt: str, expected_size: int | None) -> StoreWriter:
        """Start writing data for ``image_id`` under a per-attempt temporary name."""

    def open_data(self, image_id: str, key: str) -> BinaryIO:
        """Open the final data of upload ``key`` for reading; DataMissing if absent."""

    def data_name(self, image_id: str, key: str) -> str:
        """The object name of upload ``key``'s data (for X-Accel-Redirect and operators)."""

    def delete(self, image_id: str, key: str) -> bool:
        """Remove the final data of upload ``key``; True if something was removed."""

    def discard_attempt(self, image_id: str, attempt: str) -> bool:
        """Remove the temporary object of one upload attempt, if present."""

    def scan(self) -> Iterator[StoredObject]:
        """Every object in the store, for recovery and scrubbing."""

    def remove_object(self, name: str) -> None:
        """Remove one object found by ``scan``."""

    def problem(self) -> str | None:
        """A short description of why the store cannot be used, or None if healthy."""

    def details(self) -> dict:
        """Driver-specific properties for the admin store listing."""
