"""Settings: defaults < IMAGEDATA_* environment < explicit overrides, read once."""
from __future__ import annotations

import dataclasses
import os
import re
from urllib.parse import unquote, urlsplit

TIB = 1 << 40
STORE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_STORE_PREFIX = "os_glance_"
AUTH_MODES = ("token", "trusted-headers", "noauth")


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    """One configured store: its id, driver type and root."""

    store_id: str
    kind: str
    path: str


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, validated."""

    data_dir: str
    database_url: str
    stores: tuple[StoreConfig, ...]
    default_store: str
    image_size_cap: int = TIB
    auth: str = "token"
    data_admin_only: bool = False
    upload_lease_seconds: int = 60
    upload_idle_timeout: float = 60.0
    chunk_size: int = 1 << 20
    writeback_bytes: int = 64 << 20
    quota_image_size_total: int = 0
    quota_image_count_total: int = 0
    quota_image_count_uploading: int = 0
    public_endpoint: str = ""
    accel_redirect_prefix: str = ""
    policy: str = ""
    db_busy_timeout_ms: int = 10000

    def store(self, store_id: str) -> StoreConfig | None:
        """The configured store with this exact id, if any."""
        for store in self.stores:
            if store.store_id == store_id:
                return store
        return None


def parse_stores(value: str) -> tuple[StoreConfig, ...]:
    """Parse ``id=file:///abs/path,id2=file:///other`` into store configs."""
    stores = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        store_id, sep, url = entry.partition("=")
        store_id = store_id.strip()
        if not sep or not STORE_ID_RE.match(store_id):
            raise ConfigError(f"IMAGEDATA_STORES: bad entry {entry!r}")
        if store_id.startswith(RESERVED_STORE_PREFIX):
            raise ConfigError(f"IMAGEDATA_STORES: {store_id!r} is a reserved id")
        parts = urlsplit(url.strip())
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise ConfigError(f"IMAGEDATA_STORES: {store_id} must be a file:/// URL")
        path = unquote(parts.path)
        if not os.path.isabs(path):
            raise ConfigError(f"IMAGEDATA_STORES: {store_id} path must be absolute")
        if any(s.store_id == store_id for s in stores):
            raise ConfigError(f"IMAGEDATA_STORES: {store_id!r} given twice")
        stores.append(StoreConfig(store_id, "file", os.path.normpath(path)))
    if not stores:
        raise ConfigError("IMAGEDATA_STORES names no store")
    return tuple(stores)


def _int(env: dict, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


def _bool(env: dict, name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def load_settings(env: dict | None = None, **overrides) -> Settings:
    """Build settings from defaults, then the environment, then ``overrides``."""
    env = dict(os.environ if env is None else env)
    data_dir = os.path.abspath(overrides.pop("data_dir", None) or env.get("IMAGEDATA_DATA_DIR") or "var")
    database_url = env.get("IMAGEDATA_DATABASE_URL") or f"sqlite:///{data_dir}/imagedata.db"
    stores = parse_stores(env.get("IMAGEDATA_STORES") or f"local=file://{data_dir}/images")
    default_store = env.get("IMAGEDATA_DEFAULT_STORE") or stores[0].store_id
    values = dict(
        data_dir=data_dir,
        database_url=database_url,
        stores=stores,
        default_store=default_store,
        image_size_cap=_int(env, "IMAGEDATA_IMAGE_SIZE_CAP", TIB, minimum=1),
        auth=(env.get("IMAGEDATA_AUTH") or "token").strip(),
        data_admin_only=_bool(env, "IMAGEDATA_DATA_ADMIN_ONLY"),
        upload_lease_seconds=_int(env, "IMAGEDATA_UPLOAD_LEASE_SECONDS", 60, minimum=2),
        upload_idle_timeout=float(_int(env, "IMAGEDATA_UPLOAD_IDLE_TIMEOUT", 60, minimum=1)),
        chunk_size=_int(env, "IMAGEDATA_CHUNK_SIZE", 1 << 20, minimum=4096),
        writeback_bytes=_int(env, "IMAGEDATA_WRITEBACK_BYTES", 64 << 20),
        quota_image_size_total=_int(env, "IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL", 0),
        quota_image_count_total=_int(env, "IMAGEDATA_QUOTA_IMAGE_COUNT_TOTAL", 0),
        quota_image_count_uploading=_int(env, "IMAGEDATA_QUOTA_IMAGE_COUNT_UPLOADING", 0),
        public_endpoint=(env.get("IMAGEDATA_PUBLIC_ENDPOINT") or "").rstrip("/"),
        accel_redirect_prefix=(env.get("IMAGEDATA_ACCEL_REDIRECT") or "").rstrip("/"),
        policy=env.get("IMAGEDATA_POLICY") or "",
        db_busy_timeout_ms=_int(env, "IMAGEDATA_DB_BUSY_TIMEOUT_MS", 10000),
    )
    values.update(overrides)
    settings = Settings(**values)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Refuse settings that cannot work, with a message naming the variable."""
    if settings.store(settings.default_store) is None:
        raise ConfigError(f"IMAGEDATA_DEFAULT_STORE {settings.default_store!r} is not in IMAGEDATA_STORES")
    if settings.auth not in AUTH_MODES:
        raise ConfigError(f"IMAGEDATA_AUTH must be one of {', '.join(AUTH_MODES)}")
