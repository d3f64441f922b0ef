"""The cache API (Glance's Image API 2.14 and 2.18), answering for this host's cache only."""
from __future__ import annotations

from imagedata.errors import BadRequest, Conflict, NotFound
from imagedata.policy import Caller
from imagedata.service import Services, locations
from imagedata.service.cache.core import ImageCache
from imagedata.service.cache.fill import ImageFacts
from imagedata.service.cache.upkeep import forget_gone
from imagedata.service.download import cache_source
from imagedata.service.images import find_image
from imagedata.stores.base import IMAGE_ID_RE

CLEAR_TARGETS = {"": (True, True), "both": (True, True), "cache": (True, False), "queue": (False, True)}


def _cache(svc: Services, caller: Caller, rule: str) -> ImageCache:
    svc.policy.enforce(rule, caller)
    if svc.cache is None:
        raise NotFound("Caching via API is not supported at this site.")  # Glance's words
    return svc.cache


def cache_state(svc: Services, caller: Caller) -> dict:
    """GET /v2/cache: the copies on this host and the images queued for it (images deleted or
    deactivated since are dropped first, so they are never listed)."""
    cache = _cache(svc, caller, "cache_list")
    forget_gone(svc)
    cached = [{"image_id": e.image_id, "hits": e.hits, "last_accessed": e.last_accessed,
               "last_modified": e.last_modified, "size": e.size} for e in cache.entries()]
    return {"cached_images": cached, "queued_images": cache.index.queued()}


def queue_image(svc: Services, caller: Caller, image_id: str) -> None:
    """PUT /v2/cache/{id}: fetch an active image into this host's cache, in the background."""
    cache = _cache(svc, caller, "cache_image")
    image = find_image(image_id)
    if image is None:
        raise NotFound(f"Image {image_id} not found.")
    if image.status != "active":
        raise BadRequest("Only images with status active can be targeted for queueing")
    copies = locations.copies_of(image.id)
    source = cache_source(svc, image, copies)
    if source is None:
        stores = ", ".join(sorted({copy.store for copy in copies if copy.status == "active"})) or "none"
        raise BadRequest(f"Image {image.id} is read from a local store ({stores}) and is never cached; "
                         "only images in remote stores (S3) are.")
    if (image.size or 0) > cache.max_bytes:
        raise BadRequest(f"Image {image.id} ({image.size} bytes) is larger than this host's cache "
                         f"(IMAGEDATA_CACHE_MAX_BYTES={cache.max_bytes}) and is never cached.")
    if not cache.is_cached(image.id):
        cache.queue(ImageFacts.of(image), source)


def remove_image(svc: Services, caller: Caller, image_id: str) -> None:
    """DELETE /v2/cache/{id}: drop the copy and the queue entry (404 when the image is neither
    known nor cached nor queued)."""
    cache = _cache(svc, caller, "cache_delete")
    image_id = (image_id or "").lower()
    if not IMAGE_ID_RE.match(image_id) or (not cache.drop(image_id) and find_image(image_id) is None):
        raise NotFound(f"Image {image_id} not found.")


def clear(svc: Services, caller: Caller, target: str | None) -> None:
    """DELETE /v2/cache: drop every copy, the queue, or both (``x-image-cache-clear-target``)."""
    cache = _cache(svc, caller, "cache_delete")
    choice = CLEAR_TARGETS.get((target or "").strip().lower())
    if choice is None:
        # Glance: "both" is refused there; it is accepted here as the header's documented value.
        raise BadRequest("If provided 'x-image-cache-clear-target' must be 'cache', 'queue', 'both' or empty string.")
    cache.clear(copies=choice[0], queue=choice[1])


def clean(svc: Services, caller: Caller) -> None:
    """POST /v2/cache/clean: remove what dead fills left and copies the index does not know."""
    _cache(svc, caller, "cache_clean").recover()


def prune(svc: Services, caller: Caller) -> dict:
    """POST /v2/cache/prune: evict until the cache fits its limit (it always does, unless the
    limit was lowered since the copies were made)."""
    files, size = _cache(svc, caller, "cache_prune").prune()
    return {"total_files_pruned": files, "total_bytes_pruned": size}


def cached_nodes(svc: Services, caller: Caller, image_id: str) -> list:
    """GET /v2/cache/nodes/{id}: Glance's centralized cache only; each host has its own here."""
    _cache(svc, caller, "cache_list")
    raise Conflict("Centralized caching is not enabled")
