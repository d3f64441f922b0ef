"""Stores: image data backends chosen per request by their configured id."""
from __future__ import annotations

from imagedata.config import Settings, StoreConfig
from imagedata.stores.base import Store
from imagedata.stores.filesystem import FilesystemStore


class StoreRegistry:
    """The configured stores, in configuration order, with the default flagged, and the
    staging store where data for an import waits (never listed, never a copy's home)."""

    def __init__(self, stores: dict[str, Store], default_id: str, staging: Store | None = None):
        self.stores = stores
        self.default_id = default_id
        self.staging = staging

    def get(self, store_id: str | None) -> Store | None:
        """The store with exactly this id (the staging store too), or None."""
        if self.staging is not None and store_id == self.staging.store_id:
            return self.staging
        return self.stores.get(store_id) if store_id else None

    def named(self, store_id: str | None) -> Store | None:
        """The configured store a request may name (X-Image-Meta-Store, ?prefer=, an import's
        stores), or None: the staging store is internal and never named by a client."""
        return self.stores.get(store_id) if store_id else None

    @property
    def default(self) -> Store:
        """The store used when a request names none."""
        return self.stores[self.default_id]

    def __iter__(self):
        return iter(self.stores.values())


def build_store(cfg: StoreConfig, settings: Settings) -> Store:
    """One driver instance for one configured store (no I/O: see ``prepare_stores``)."""
    if cfg.kind == "s3":
        from imagedata.stores.s3 import S3Store  # boto3 is an optional extra

        return S3Store(cfg.store_id, cfg.s3)
    return FilesystemStore(cfg.store_id, cfg.path, settings.chunk_size, settings.writeback_bytes)


def build_registry(settings: Settings) -> StoreRegistry:
    """Instantiate one driver per configured store."""
    stores = {cfg.store_id: build_store(cfg, settings) for cfg in settings.stores}
    staging = build_store(settings.staging_store, settings) if settings.staging_store is not None else None
    return StoreRegistry(stores, settings.default_store, staging)


def prepare_stores(registry: StoreRegistry) -> None:
    """Start-up checks: create missing folders, refuse a missing bucket (ConfigError)."""
    for store in registry:
        store.prepare()
    if registry.staging is not None:
        registry.staging.prepare()
