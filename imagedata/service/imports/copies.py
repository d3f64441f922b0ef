"""DELETE /v2/stores/{store_id}/{image_id}: remove one copy of an image from one store."""
from __future__ import annotations

import logging

from imagedata.errors import Conflict
from imagedata.policy import Caller
from imagedata.service import Services, locations
from imagedata.service.images import get_visible_image
from imagedata.storable import printable

log = logging.getLogger(__name__)


def delete_copy(svc: Services, caller: Caller, store_id: str, image_id: str) -> None:
    """Remove the image's copy in one store (admins by default): 409 for an unknown store or
    an image that is not active, 404 when that store holds no copy, 403 for the last copy."""
    if svc.stores.named(store_id) is None:
        raise Conflict(f"Store {printable(store_id)!r} is not configured.")
    image = get_visible_image(svc, caller, image_id, "delete_image_location")
    copy = locations.remove_copy(image.id, store_id)
    locations.release(svc.stores, image.id, copy.store, copy.attempt)
    log.info("image %s: its copy in store %s removed", image.id, store_id)
