"""Bytes from Glance's download into a store, verified against Glance's record on the way."""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

from imagedata.service import Services
from imagedata.service.migrate.adopt import Written, write_data
from imagedata.service.migrate.record import GlanceImage
from imagedata.service.migrate.source import GlanceSource
from imagedata.stores.base import Store


def mismatch(glance: GlanceImage, written: Written) -> str | None:
    """Why the bytes read are not the ones Glance recorded, or None when size and digests agree.

    Glance: it serves altered bytes with 200 and the recorded Content-MD5, so only recomputing
    the digests finds them.
    """
    record = glance.data
    problems = []
    if record.get("size") is not None and written.size != record["size"]:
        problems.append(f"{written.size} bytes, recorded size {record['size']}")
    if record.get("checksum") and written.md5 != record["checksum"]:
        problems.append(f"md5 {written.md5}, recorded checksum {record['checksum']}")
    if record.get("os_hash_value") and written.hexdigest != record["os_hash_value"]:
        problems.append(f"{record.get('os_hash_algo')} differs from the recorded os_hash_value")
    if not problems:
        return None
    return "Glance's bytes do not match its record: " + "; ".join(problems)


def counted(chunks: Iterable[bytes], on_bytes: Callable[[int], None]) -> Iterator[bytes]:
    """The same chunks, reporting each one's length."""
    for piece in chunks:
        on_bytes(len(piece))
        yield piece


def copy_data(svc: Services, source: GlanceSource, glance: GlanceImage, store: Store,
              on_bytes: Callable[[int], None] = lambda n: None,
              on_resume: Callable[[int, str], None] = lambda o, r: None) -> Written:
    """Stream the image's data from Glance into ``store``; the image is active only if it verified."""
    chunks = counted(source.download(glance.id, on_resume), on_bytes)
    return write_data(svc, glance, store, chunks, lambda written: mismatch(glance, written))
