"""The domain: image records, the upload state machine, quotas and downloads.

Nothing here imports Flask; functions receive a ``Services`` bundle and a ``Caller``.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from imagedata.config import Settings
from imagedata.policy import Policy
from imagedata.stores import StoreRegistry

if TYPE_CHECKING:
    from imagedata.service.cache import ImageCache


@dataclasses.dataclass
class Services:
    """What the domain functions need, wired once by the app factory."""

    settings: Settings
    policy: Policy
    stores: StoreRegistry
    cache: "ImageCache | None" = None  # this host's image cache (IMAGEDATA_CACHE_DIR), when on
