"""A disk format found in data declared ``raw``: stored as raw, as declared, but never silently.

A qcow2 uploaded as ``"disk_format": "raw"`` is accepted (raw means "these bytes as they are",
and they are safe), yet a virtual machine booted from it sees qcow2 metadata, not a disk. The
upload records what was found in the read-only property ``imagedata_detected_format`` (shown
by ``glance image-show`` and ``openstack image show``), answers it in the
``Imagedata-Detected-Format`` header of the PUT, and logs it.
"""
from __future__ import annotations

import logging

from imagedata.models import ImageProperty
from imagedata.schemas import DETECTED_FORMAT_PROPERTY

log = logging.getLogger(__name__)

HEADER = "Imagedata-Detected-Format"


def record_detected_format(image_id: str, detected: str | None) -> None:
    """Inside the transaction that activates the image: the property, and a log line."""
    if not detected:
        return
    ImageProperty.delete().where((ImageProperty.image == image_id)
                                 & (ImageProperty.name == DETECTED_FORMAT_PROPERTY)).execute()
    ImageProperty.insert(image=image_id, name=DETECTED_FORMAT_PROPERTY, value=detected).execute()
    log.info("image %s was declared raw but its data is a %s image: stored as raw, as declared; "
             "to use it as %s, create an image with disk_format %s", image_id, detected, detected, detected)


def detected_format_of(image_id: str) -> str | None:
    """The format recorded for an image's data (None when the data is what was declared)."""
    row = (ImageProperty.select(ImageProperty.value)
           .where((ImageProperty.image == image_id) & (ImageProperty.name == DETECTED_FORMAT_PROPERTY)).first())
    return row.value if row else None
