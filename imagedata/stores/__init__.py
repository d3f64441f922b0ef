"""Stores: image data backends chosen per request by their configured id."""
from __future__ import annotations

from imagedata.config import Settings
from imagedata.stores.base import Store
from imagedata.stores.filesystem import FilesystemStore

DRIVERS = {"file": FilesystemStore}


class StoreRegistry:
    """The configured stores, in configuration order, with the default flagged."""

    def __init__(self, stores: dict[str, Store], default_id: str):
        self.stores = stores
        self.default_id = default_id

    def get(self, store_id: str) -> Store | None:
        """The store with exactly this id, or None."""
        return self.stores.get(store_id)

    @property
    def default(self) -> Store:
        """The store used when a request names none."""
        return self.stores[self.default_id]

    def __iter__(self):
        return iter(self.stores.values())


def build_registry(settings: Settings) -> StoreRegistry:
    """Instantiate one driver per configured store."""
    stores = {}
    for cfg in settings.stores:
        store = DRIVERS[cfg.kind](cfg.store_id, cfg.path, settings.chunk_size, settings.writeback_bytes)
        store.prepare()
        stores[cfg.store_id] = store
    return StoreRegistry(stores, settings.default_store)
