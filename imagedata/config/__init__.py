"""Settings: defaults < IMAGEDATA_* environment < explicit overrides, read once. The
parsers of single values are in ``values``; the stores' URLs are read by ``stores``."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import socket

from imagedata.config.stores import (DEFAULT_PART_SIZE, RESERVED_STORE_PREFIX, STAGING_STORE_ID, STORE_ID_RE,
                                     S3Config, StoreConfig, parse_stores, staging_store)
from imagedata.config.values import (HOST_NAME_RE, AllowedHost, ConfigError, env_bool, env_int,
                                     parse_allowed_hosts, parse_networks, parse_origins, parse_ports, parse_size)

__all__ = [
    "AUTH_MODES", "CONVERT_FORMATS", "DEFAULT_PART_SIZE", "HASH_ALGORITHMS", "HOST_NAME_RE", "IMPORT_METHODS",
    "LEASE_MARGIN_SECONDS", "LOG_FORMATS", "RESERVED_STORE_PREFIX", "STAGING_STORE_ID", "STORE_ID_RE", "TIB",
    "AllowedHost", "ConfigError", "S3Config", "Settings", "StoreConfig", "default_host_id", "load_settings",
    "parse_allowed_hosts", "parse_import_methods", "parse_networks", "parse_origins", "parse_ports",
    "parse_size", "parse_stores", "staging_store", "validate",
]

TIB = 1 << 40
IMPORT_METHODS = ("glance-direct", "web-download", "copy-image")
CONVERT_FORMATS = ("raw", "qcow2")
# A lease outlives the longest pause the idle timeout allows, by this much.
LEASE_MARGIN_SECONDS = 2
AUTH_MODES = ("token", "trusted-headers", "noauth", "keystone")
LOG_FORMATS = ("text", "json")
# Glance's hashing_algorithm: any hashlib algorithm; these are the guaranteed ones with a
# fixed-length digest (shake_* need a length for hexdigest(), which no client passes).
HASH_ALGORITHMS = tuple(sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake_")))


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
    upload_lease_seconds: int = 90
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
    host_id: str = ""
    hash_algo: str = "sha512"  # os_hash_algo of new uploads (Glance's hashing_algorithm)
    resume_seconds: int = 86400
    keystone_config: str = ""  # IMAGEDATA_AUTH=keystone: file with [keystone_authtoken]
    log_format: str = "text"
    # Networks whose clients may read /metrics without an admin token.
    metrics_allow: tuple = ()
    # web-download: the ports it may connect to, and (when set) the only hosts it may fetch.
    web_download_allowed_ports: tuple = (80, 443)
    web_download_allowed_hosts: tuple = ()  # AllowedHost entries
    web_download_idle_timeout: float = 60.0
    # Browser origins (scheme://host[:port]) allowed to call the API (CORS); "*": any.
    cors_allowed_origins: tuple = ()
    # Key of the signed download links (empty: a random key kept in the data folder).
    link_secret: str = dataclasses.field(default="", repr=False)
    link_max_seconds: int = 86400
    # Interoperable import: the methods offered (empty: no import), where staged data waits
    # (a store every host can read; by default a sub-folder or sub-prefix of the default
    # store), and the disk format imported images are converted to ("" : none).
    import_methods: tuple = IMPORT_METHODS
    staging_store: StoreConfig | None = None
    import_convert_to: str = ""
    # This host's image cache (off unless both are set): its folder and its size limit.
    cache_dir: str = ""
    cache_max_bytes: int = 0

    def store(self, store_id: str) -> StoreConfig | None:
        """The configured store with this exact id, if any."""
        for store in self.stores:
            if store.store_id == store_id:
                return store
        return None


def parse_import_methods(value: str | None) -> tuple:
    """IMAGEDATA_IMPORT_METHODS: a comma list of the methods offered (empty: import is off)."""
    if value is None:
        return IMPORT_METHODS
    methods = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [method for method in methods if method not in IMPORT_METHODS]
    if unknown:
        raise ConfigError(f"IMAGEDATA_IMPORT_METHODS: unknown method {unknown[0]!r} "
                          f"(known: {', '.join(IMPORT_METHODS)})")
    return methods


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()[:8]
    except OSError:
        return "noboot"


def default_host_id() -> str:
    """This host *and boot*: a process id recorded before a reboot is not one of ours."""
    return f"{socket.gethostname()}:{_boot_id()}"


def load_settings(env: dict | None = None, **overrides) -> Settings:
    """Build settings from defaults, then the environment, then ``overrides``."""
    env = dict(os.environ if env is None else env)
    data_dir = os.path.abspath(overrides.pop("data_dir", None) or env.get("IMAGEDATA_DATA_DIR") or "var")
    database_url = env.get("IMAGEDATA_DATABASE_URL") or f"sqlite:///{data_dir}/imagedata.db"
    stores = parse_stores(env.get("IMAGEDATA_STORES") or f"local=file://{data_dir}/images", env)
    default_store = env.get("IMAGEDATA_DEFAULT_STORE") or stores[0].store_id
    cache_dir = (env.get("IMAGEDATA_CACHE_DIR") or "").strip()
    cache_max = (env.get("IMAGEDATA_CACHE_MAX_BYTES") or "").strip()
    values = dict(
        data_dir=data_dir,
        database_url=database_url,
        stores=stores,
        default_store=default_store,
        image_size_cap=env_int(env, "IMAGEDATA_IMAGE_SIZE_CAP", TIB, minimum=1),
        auth=(env.get("IMAGEDATA_AUTH") or "token").strip(),
        data_admin_only=env_bool(env, "IMAGEDATA_DATA_ADMIN_ONLY"),
        upload_lease_seconds=env_int(env, "IMAGEDATA_UPLOAD_LEASE_SECONDS", 90, minimum=2),
        upload_idle_timeout=float(env_int(env, "IMAGEDATA_UPLOAD_IDLE_TIMEOUT", 60, minimum=1)),
        chunk_size=env_int(env, "IMAGEDATA_CHUNK_SIZE", 1 << 20, minimum=4096),
        writeback_bytes=env_int(env, "IMAGEDATA_WRITEBACK_BYTES", 64 << 20),
        quota_image_size_total=env_int(env, "IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL", 0),
        quota_image_count_total=env_int(env, "IMAGEDATA_QUOTA_IMAGE_COUNT_TOTAL", 0),
        quota_image_count_uploading=env_int(env, "IMAGEDATA_QUOTA_IMAGE_COUNT_UPLOADING", 0),
        public_endpoint=(env.get("IMAGEDATA_PUBLIC_ENDPOINT") or "").rstrip("/"),
        accel_redirect_prefix=(env.get("IMAGEDATA_ACCEL_REDIRECT") or "").rstrip("/"),
        policy=env.get("IMAGEDATA_POLICY") or "",
        db_busy_timeout_ms=env_int(env, "IMAGEDATA_DB_BUSY_TIMEOUT_MS", 10000),
        host_id=(env.get("IMAGEDATA_HOST_ID") or "").strip() or default_host_id(),
        hash_algo=(env.get("IMAGEDATA_HASH_ALGO") or "sha512").strip().lower(),
        resume_seconds=env_int(env, "IMAGEDATA_RESUME_SECONDS", 86400),
        keystone_config=(env.get("IMAGEDATA_KEYSTONE_CONFIG") or "").strip(),
        log_format=(env.get("IMAGEDATA_LOG_FORMAT") or "text").strip().lower(),
        metrics_allow=parse_networks("IMAGEDATA_METRICS_ALLOW", env.get("IMAGEDATA_METRICS_ALLOW") or ""),
        web_download_allowed_ports=parse_ports("IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS",
                                               env.get("IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS") or "", (80, 443)),
        web_download_allowed_hosts=parse_allowed_hosts("IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS",
                                                       env.get("IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS") or ""),
        web_download_idle_timeout=float(env_int(env, "IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT", 60, minimum=1)),
        cors_allowed_origins=parse_origins(env.get("IMAGEDATA_CORS_ALLOWED_ORIGINS") or ""),
        link_secret=(env.get("IMAGEDATA_LINK_SECRET") or "").strip(),
        link_max_seconds=env_int(env, "IMAGEDATA_LINK_MAX_SECONDS", 86400, minimum=1),
        import_methods=parse_import_methods(env.get("IMAGEDATA_IMPORT_METHODS")),
        import_convert_to=(env.get("IMAGEDATA_IMPORT_CONVERT_TO") or "").strip().lower(),
        cache_dir=os.path.abspath(cache_dir) if cache_dir else "",
        cache_max_bytes=parse_size("IMAGEDATA_CACHE_MAX_BYTES", cache_max) if cache_max else 0,
    )
    # (an unknown default store is refused by validate() below)
    default_cfg = next((cfg for cfg in stores if cfg.store_id == default_store), stores[0])
    values["staging_store"] = staging_store(env.get("IMAGEDATA_STAGING_STORE") or "", default_cfg, env)
    values.update(overrides)
    settings = Settings(**values)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Refuse settings that cannot work, with a message naming the variable."""
    if settings.store(settings.default_store) is None:
        raise ConfigError(f"IMAGEDATA_DEFAULT_STORE {settings.default_store!r} is not in IMAGEDATA_STORES")
    if settings.upload_lease_seconds < settings.upload_idle_timeout + LEASE_MARGIN_SECONDS:
        raise ConfigError(f"IMAGEDATA_UPLOAD_LEASE_SECONDS ({settings.upload_lease_seconds}) must be at least "
                          f"IMAGEDATA_UPLOAD_IDLE_TIMEOUT ({settings.upload_idle_timeout:g}) plus "
                          f"{LEASE_MARGIN_SECONDS} seconds, or a paused upload could be taken for a dead one")
    if settings.auth not in AUTH_MODES:
        raise ConfigError(f"IMAGEDATA_AUTH must be one of {', '.join(AUTH_MODES)}")
    if settings.hash_algo not in HASH_ALGORITHMS:
        raise ConfigError(f"IMAGEDATA_HASH_ALGO must be one of {', '.join(HASH_ALGORITHMS)}")
    if settings.auth == "keystone" and not settings.keystone_config:
        raise ConfigError("IMAGEDATA_AUTH=keystone needs IMAGEDATA_KEYSTONE_CONFIG: the file with the "
                          "[keystone_authtoken] section")
    if settings.link_secret and len(settings.link_secret) < 32:
        raise ConfigError("IMAGEDATA_LINK_SECRET must be at least 32 characters (e.g. the output of "
                          "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    _validate_cache(settings)
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(f"IMAGEDATA_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    if settings.import_convert_to and settings.import_convert_to not in CONVERT_FORMATS:
        raise ConfigError(f"IMAGEDATA_IMPORT_CONVERT_TO must be empty or one of {', '.join(CONVERT_FORMATS)}")


def _validate_cache(settings: Settings) -> None:
    """The cache needs both settings, a positive limit and a folder of its own."""
    if bool(settings.cache_dir) != bool(settings.cache_max_bytes):
        missing = "IMAGEDATA_CACHE_MAX_BYTES" if settings.cache_dir else "IMAGEDATA_CACHE_DIR"
        raise ConfigError(f"the image cache needs both IMAGEDATA_CACHE_DIR and IMAGEDATA_CACHE_MAX_BYTES: set "
                          f"{missing} too (or neither, to leave the cache off)")
    if not settings.cache_dir:
        return
    for store in (*settings.stores, *([settings.staging_store] if settings.staging_store else [])):
        if store.kind == "file" and _overlaps(settings.cache_dir, store.path):
            raise ConfigError(f"IMAGEDATA_CACHE_DIR {settings.cache_dir!r} overlaps the folder of store "
                              f"{store.store_id!r}: give the cache a folder of its own")


def _overlaps(first: str, second: str) -> bool:
    first, second = os.path.normpath(first), os.path.normpath(second)
    return first == second or first.startswith(second + os.sep) or second.startswith(first + os.sep)
