"""An image's copies: which stores hold its verified data, which to read, and removing data.

Every write to ``image_locations`` is here, and so is every call of a store's removal verbs
(``remove``, ``remove_object``): what a failed or dead attempt left, the kept bytes of an
interrupted upload that are no longer wanted, the copies of a deleted image, and the
orphans scrub finds. Removal is best effort: a store that
does not answer leaves its object to ``imagedata scrub``, and the record never waits for it.
"""
from __future__ import annotations

import logging
from typing import Iterable

from imagedata.db import prepared, write_transaction
from imagedata.errors import Conflict, Forbidden, NotFound
from imagedata.models import Image, ImageLocation, utcnow
from imagedata.stores import StoreRegistry
from imagedata.stores.base import Store, StoredObject

log = logging.getLogger(__name__)


def copies_of(image_id: str) -> list[ImageLocation]:
    """Every copy of one image (active and broken), oldest first."""
    return prepared(ImageLocation, "copies-of-one", lambda image_id: ImageLocation.select().where(
        ImageLocation.image == image_id).order_by(ImageLocation.id), image_id=image_id)


def copies_by_image(image_ids: Iterable[str]) -> dict[str, list[ImageLocation]]:
    """The copies of several images in one query, by image id, oldest first."""
    ids = list(image_ids)
    found: dict[str, list[ImageLocation]] = {image_id: [] for image_id in ids}
    if len(ids) == 1:
        found[ids[0]] = copies_of(ids[0])
        return found
    if ids:
        for row in ImageLocation.select().where(ImageLocation.image.in_(ids)).order_by(ImageLocation.id):
            found[row.image_id].append(row)
    return found


def read_order(copies: list[ImageLocation], stores: StoreRegistry,
               prefer: list[str] | None = None) -> list[tuple[Store, ImageLocation]]:
    """The active copies in configured stores, in the order a download tries them: copies in
    stores that report a problem last, then the preferred stores in the caller's order, then
    the default store, then the oldest copy first."""
    rank = {store_id: index for index, store_id in enumerate(prefer or [])}
    default = len(rank)
    usable = [(stores.get(row.store), row) for row in copies if row.status == "active"]
    usable = [(store, row) for store, row in usable if store is not None]
    # With one copy there is nothing to choose: no health probe on the common path.
    sick = {store.store_id for store, _ in usable if store.health().problem} if len(usable) > 1 else set()

    def key(item) -> tuple[bool, int, int]:
        store, row = item
        return (store.store_id in sick, rank.get(row.store, default if row.store == stores.default_id else default + 1),
                row.id)

    return sorted(usable, key=key)


def add_copy(image_id: str, store_id: str, attempt: str, size: int, status: str = "active") -> None:
    """Record a verified copy (inside the transaction that makes the data the image's), or the
    staged data of an import (``staged``: in the staging store, never served)."""
    ImageLocation.insert(image=image_id, store=store_id, attempt=attempt, size=size, status=status,
                         created_at=utcnow()).execute()


def flag_copy(copy: ImageLocation, problem: str | None) -> bool:
    """Mark a copy broken with the reason (None: active again), if it is still the same copy."""
    status = "active" if problem is None else "broken"
    rows = (ImageLocation.update(status=status, error=problem[:255] if problem else None)
            .where((ImageLocation.id == copy.id) & (ImageLocation.attempt == copy.attempt)).execute())
    return rows == 1


def remove_copy(image_id: str, store_id: str) -> ImageLocation:
    """Remove the record of the image's copy in ``store_id`` (DELETE /v2/stores/{store}/{image}),
    never its last active one, and only while the image is active and no import holds it;
    the caller releases the data. NotFound when that store holds no copy."""
    with write_transaction():
        image = Image.get_or_none((Image.id == image_id) & (Image.deleted == False))  # noqa: E712
        if image is None or image.status != "active" or image.attempt is not None:
            raise Conflict(f"Image {image_id} is not active, or an import holds it: its copies cannot be "
                           "removed now.")
        copies = [copy for copy in copies_of(image_id) if copy.status == "active"]
        copy = next((c for c in copies if c.store == store_id), None)
        if copy is None:
            raise NotFound(f"Image {image_id} has no copy in store {store_id!r}.")
        if len(copies) == 1:
            raise Forbidden(f"Store {store_id!r} holds the last copy of image {image_id}: delete the image "
                            "instead.")
        ImageLocation.delete().where(ImageLocation.id == copy.id).execute()
    return copy


def drop_copies_of(image_id: str, copy_ids: list[int]) -> None:
    """Remove the records of some copies of an image (inside the caller's transaction); their
    data is released by the caller once it is committed."""
    if copy_ids:
        ImageLocation.delete().where((ImageLocation.image == image_id) & ImageLocation.id.in_(copy_ids)).execute()


def drop_copies(image_id: str) -> list[ImageLocation]:
    """Remove the records of every copy of a deleted image (inside its transaction); returns
    them, so their data can be released once the transaction is committed."""
    copies = list(ImageLocation.select().where(ImageLocation.image == image_id))
    ImageLocation.delete().where(ImageLocation.image == image_id).execute()
    return copies


def release(stores: StoreRegistry, image_id: str, store_id: str | None, attempt: str | None,
            state: str | None = None) -> None:
    """Remove everything one attempt left in its store (see ``Store.remove``); never raises."""
    store = stores.get(store_id)
    if store is None or not attempt:
        return
    try:
        store.remove(image_id, attempt, state)
    except Exception as exc:  # the scrubber finds what is left
        log.warning("could not remove the data of attempt %s of image %s from store %s: %s", attempt, image_id,
                    store_id, getattr(exc, "message", None) or exc)


def remove_orphan(store: Store, obj: StoredObject) -> bool:
    """Remove one object a scan found that no image accounts for (``imagedata scrub --fix``)."""
    return store.remove_object(obj)


def release_copies(stores: StoreRegistry, image_id: str, copies: Iterable[ImageLocation]) -> None:
    """Remove the data of copies whose records are gone."""
    for copy in copies:
        release(stores, image_id, copy.store, copy.attempt)
