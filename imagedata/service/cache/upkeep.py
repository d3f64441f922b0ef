"""Keeping the cache true to the database, and re-hashing it (``imagedata verify --cache``).

Downloads never reach the cache for a deleted or deactivated image, nor for one without an
active copy in a remote store (the database decides first), and a copy serves only the data
its fill verified; ``forget_gone`` also removes such images' copies and queue entries, every
``SWEEP_SECONDS`` in each worker and before the cache is listed, and restarts the fetches
of queued images that are not cached yet. Nothing here writes the image records or their
copies (the lifecycle package and locations.py own them): the cache only follows them.
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Callable, Iterable

from imagedata.config import HASH_ALGORITHMS
from imagedata.models import Image
from imagedata.service import Services, locations
from imagedata.service.cache.fill import ImageFacts
from imagedata.service.download import cache_source
from imagedata.service.verify import Finding
from imagedata.stores.base import READ_PIECE

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0
CHUNK = 500  # ids per query


def _live_images(image_ids: Iterable[str]) -> dict[str, Image]:
    ids, found = sorted(set(image_ids)), {}
    for first in range(0, len(ids), CHUNK):
        query = Image.select().where(Image.id.in_(ids[first:first + CHUNK]) & (Image.deleted == False))  # noqa: E712
        found.update((image.id, image) for image in query)
    return found


def _in_remote_store(svc: Services, image_ids: Iterable[str]) -> set[str]:
    """The images with an active copy in a store that is not a local folder."""
    ids, found = sorted(image_ids), set()
    for first in range(0, len(ids), CHUNK):
        for image_id, copies in locations.copies_by_image(ids[first:first + CHUNK]).items():
            if any(copy.status == "active" and getattr(svc.stores.get(copy.store), "kind", "file") != "file"
                   for copy in copies):
                found.add(image_id)
    return found


def forget_gone(svc: Services) -> list[str]:
    """Drop the copies, fills and queue entries of images that are deleted or not active, that
    have no active copy in a remote store any more (removed, or taken out of service by
    verify), or whose record no longer describes the cached data; the ids dropped."""
    cache = svc.cache
    recorded = {entry.image_id: entry.identity for entry in cache.index.entries(None)}
    ids = set(recorded) | set(cache.index.queued())
    live = {i: image for i, image in _live_images(ids).items() if image.status == "active"}
    remote = _in_remote_store(svc, live)
    gone = sorted(i for i in ids if i not in remote
                  or recorded.get(i, ImageFacts.of(live[i]).identity) != ImageFacts.of(live[i]).identity)
    for image_id in gone:
        cache.drop(image_id)
        log.info("image %s left this host's cache: it is deleted or not active, no longer in a remote store, "
                 "or its record changed", image_id)
    return gone


def sweep(svc: Services) -> None:
    """The periodic upkeep: ``forget_gone``, then fetch the queued images not cached yet."""
    forget_gone(svc)
    cache = svc.cache
    queued = [i for i in cache.index.queued() if not cache.is_cached(i) and i not in cache.fills]
    for image_id, image in _live_images(queued).items():
        source = cache_source(svc, image, locations.copies_of(image_id))
        if source is None or (image.size or 0) > cache.max_bytes:
            cache.index.dequeue([image_id])
        else:
            cache.fill_later(ImageFacts.of(image), source)


def verify_cache(svc: Services, on_bytes: Callable[[int], None] = lambda n: None,
                 on_finding: Callable[[Finding], None] = lambda f: None) -> list[Finding]:
    """Re-hash every cached copy against its image's record; corrupt copies are dropped."""
    cache = svc.cache
    forget_gone(svc)
    findings = []
    for entry in cache.entries():
        image = _live_images([entry.image_id]).get(entry.image_id)
        if image is None:
            continue
        finding = _check(cache.layout.final(entry.image_id), ImageFacts.of(image), on_bytes)
        if finding is None:
            continue  # evicted while the run went on
        if finding.result != "ok":
            cache.drop(entry.image_id)
            log.error("verify: the cached copy of image %s is %s (%s); dropped", entry.image_id, finding.result,
                      finding.reason)
        findings.append(finding)
        on_finding(finding)
    return findings


def _check(path: str, image: ImageFacts, on_bytes: Callable[[int], None]) -> Finding | None:
    finding = Finding(image.id, "cache", "ok")
    md5 = hashlib.md5(usedforsecurity=False)
    other = hashlib.new(image.os_hash_algo) if image.os_hash_algo in HASH_ALGORITHMS else None
    try:
        with open(path, "rb") as f:
            while piece := f.read(READ_PIECE):
                md5.update(piece)
                if other is not None:
                    other.update(piece)
                finding.size += len(piece)
                on_bytes(len(piece))
    except FileNotFoundError:
        return None
    except OSError as exc:
        finding.result, finding.reason = "unreadable", os.strerror(exc.errno or 0)
        return finding
    if finding.size != image.size:
        finding.result, finding.reason = "corrupt", f"copy is {finding.size} bytes, expected {image.size}"
    elif image.checksum and md5.hexdigest() != image.checksum:
        finding.result, finding.reason = "corrupt", "md5 (checksum) does not match"
    elif other is not None and image.os_hash_value and other.hexdigest() != image.os_hash_value:
        finding.result, finding.reason = "corrupt", f"{image.os_hash_algo} does not match"
    return finding
