"""Settings: defaults < IMAGEDATA_* environment < explicit overrides, read once."""
from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import re
import socket
from urllib.parse import parse_qs, unquote, urlsplit

TIB = 1 << 40
STORE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_STORE_PREFIX = "os_glance_"
STAGING_STORE_ID = "os_glance_staging_store"  # Glance's reserved id of its staging store
IMPORT_METHODS = ("glance-direct", "web-download", "copy-image")
CONVERT_FORMATS = ("raw", "qcow2")
# A lease outlives the longest pause the idle timeout allows, by this much.
LEASE_MARGIN_SECONDS = 2
AUTH_MODES = ("token", "trusted-headers", "noauth", "keystone")
# Two part buffers per S3 upload (one filling, one being sent): 8 MiB parts keep a worker's
# growth during an upload near 22 MB; 16 MiB parts made it 38 MB, for no measurable speed.
DEFAULT_PART_SIZE = 8 << 20
LOG_FORMATS = ("text", "json")
# A DNS name: letters, digits, hyphens and (seen in the wild) underscores, dot-separated.
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
HOST_NAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
# Glance's hashing_algorithm: any hashlib algorithm; these are the guaranteed ones with a
# fixed-length digest (shake_* need a length for hexdigest(), which no client passes).
HASH_ALGORITHMS = tuple(sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake_")))


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


@dataclasses.dataclass(frozen=True)
class S3Config:
    """Where an S3 store lives and how to sign in (secrets never appear in its repr)."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    part_size: int = DEFAULT_PART_SIZE
    checksum: str = "crc32"  # how each part's bytes are protected on the way: see S3_CHECKSUMS
    access_key: str | None = dataclasses.field(default=None, repr=False)
    secret_key: str | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    """One configured store: its id, driver type and where it keeps data."""

    store_id: str
    kind: str  # "file" or "s3"
    path: str = ""  # file stores: the absolute root directory
    s3: S3Config | None = None  # s3 stores: bucket, prefix, endpoint...


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


def parse_stores(value: str, env: dict | None = None, reserved_ok: bool = False) -> tuple[StoreConfig, ...]:
    """Parse ``id=file:///abs/path,id2=s3://bucket/prefix?endpoint=...`` into store configs."""
    stores = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        store_id, sep, url = entry.partition("=")
        store_id = store_id.strip()
        if not sep or not STORE_ID_RE.match(store_id):
            raise ConfigError(f"IMAGEDATA_STORES: bad entry {entry!r}")
        if store_id.startswith(RESERVED_STORE_PREFIX) and not reserved_ok:
            raise ConfigError(f"IMAGEDATA_STORES: {store_id!r} is a reserved id")
        if any(s.store_id == store_id for s in stores):
            raise ConfigError(f"IMAGEDATA_STORES: {store_id!r} given twice")
        parts = urlsplit(url.strip())
        if parts.scheme == "file":
            stores.append(_file_store(store_id, parts))
        elif parts.scheme == "s3":
            stores.append(StoreConfig(store_id, "s3", s3=_s3_store(store_id, parts, env or {})))
        else:
            raise ConfigError(f"IMAGEDATA_STORES: {store_id} must be a file:/// or s3:// URL")
    if not stores:
        raise ConfigError("IMAGEDATA_STORES names no store")
    return tuple(stores)


def _file_store(store_id: str, parts) -> StoreConfig:
    if parts.netloc not in ("", "localhost") or parts.query:
        raise ConfigError(f"IMAGEDATA_STORES: {store_id} must be a file:///absolute/path URL")
    path = unquote(parts.path)
    if not os.path.isabs(path):
        raise ConfigError(f"IMAGEDATA_STORES: {store_id} path must be absolute")
    return StoreConfig(store_id, "file", os.path.normpath(path))


def staging_store(value: str, default: StoreConfig, env: dict) -> StoreConfig:
    """IMAGEDATA_STAGING_STORE (a file:/// or s3:// URL), or by default the default store's
    ``staging`` sub-folder (file) or ``staging/`` sub-prefix (S3)."""
    if value.strip():
        (cfg,) = parse_stores(f"{STAGING_STORE_ID}={value.strip()}", env, reserved_ok=True)
        return cfg
    if default.kind == "file":
        return StoreConfig(STAGING_STORE_ID, "file", os.path.join(default.path, "staging"))
    return StoreConfig(STAGING_STORE_ID, "s3", s3=dataclasses.replace(default.s3, prefix=f"{default.s3.prefix}staging/"))


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


S3_QUERY_KEYS = ("endpoint", "region", "part_size", "checksum")
# How the bytes of each part are protected on their way to the store. "crc32": an S3 CRC32
# checksum per part (x-amz-checksum-crc32, itself signed), checked by the store, and an
# unsigned payload; "sha256": the payload signed with SHA-256 (SigV4), for S3 services
# that do not know the newer checksum headers. CRC32 costs a third of SHA-256 here.
S3_CHECKSUMS = ("crc32", "sha256")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _s3_store(store_id: str, parts, env: dict) -> S3Config:
    """``s3://bucket/prefix?endpoint=http://host:port&region=r&part_size=bytes&checksum=crc32``."""
    if "@" in parts.netloc:
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: credentials do not belong in the URL; set "
                          "IMAGEDATA_S3_ACCESS_KEY_ID and IMAGEDATA_S3_SECRET_ACCESS_KEY")
    bucket = parts.netloc
    if not BUCKET_RE.match(bucket):
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: {bucket!r} is not a valid bucket name")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(S3_QUERY_KEYS))
    if unknown:
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: unknown option {unknown[0]!r} "
                          f"(known: {', '.join(S3_QUERY_KEYS)})")
    option = {k: v[-1] for k, v in query.items()}
    endpoint = option.get("endpoint") or None
    if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: endpoint must be an http:// or https:// URL")
    prefix = unquote(parts.path).strip("/")
    if any(piece in ("", ".", "..") for piece in prefix.split("/")) and prefix:
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: bad prefix {prefix!r}")
    part_size = DEFAULT_PART_SIZE
    if "part_size" in option:
        try:
            part_size = int(option["part_size"])
        except ValueError:
            raise ConfigError(f"IMAGEDATA_STORES: {store_id}: part_size must be a number of bytes") from None
        if not 5 << 20 <= part_size <= 5 << 30:
            raise ConfigError(f"IMAGEDATA_STORES: {store_id}: part_size must be from 5 MiB to 5 GiB")
    checksum = option.get("checksum") or "crc32"
    if checksum not in S3_CHECKSUMS:
        raise ConfigError(f"IMAGEDATA_STORES: {store_id}: checksum must be one of {', '.join(S3_CHECKSUMS)}")
    return S3Config(bucket=bucket, prefix=f"{prefix}/" if prefix else "", endpoint=endpoint,
                    region=option.get("region") or None, part_size=part_size, checksum=checksum,
                    access_key=env.get("IMAGEDATA_S3_ACCESS_KEY_ID") or None,
                    secret_key=env.get("IMAGEDATA_S3_SECRET_ACCESS_KEY") or None)


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


def parse_networks(name: str, value: str) -> tuple:
    """A comma-separated list of addresses or CIDR networks (``127.0.0.1, 10.0.0.0/8``)."""
    networks = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {part!r} is not an IP address or network") from None
    return tuple(networks)


@dataclasses.dataclass(frozen=True)
class AllowedHost:
    """One IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS entry: a host name or a network, maybe a port."""

    name: str = ""  # a DNS name, lower case; or "" for a network entry
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None  # None: any of IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS


def parse_ports(name: str, value: str, default: tuple) -> tuple:
    """A comma-separated list of TCP ports (``80,443``); empty gives ``default``."""
    ports = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise ConfigError(f"{name}: {part!r} is not a TCP port")
        ports.append(int(part))
    return tuple(ports) or default


def parse_allowed_hosts(name: str, value: str) -> tuple:
    """``mirror.example.org, mirror2:8080, 10.0.0.0/8, 192.0.2.7:8000, [2001:db8::7]:80``."""
    entries = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        host, port = part, None
        match = re.match(r"^\[([^\]]+)\](?::(\d+))?$", part) or re.match(r"^([^:]+):(\d+)$", part)
        if match:
            host, port = match.group(1), match.group(2) and int(match.group(2))
            if port is not None and not 0 < port < 65536:
                raise ConfigError(f"{name}: {part!r} has a port out of range")
        try:
            entries.append(AllowedHost(network=ipaddress.ip_network(host, strict=False), port=port))
            continue
        except ValueError:
            pass
        host = host.lower().rstrip(".")
        if not HOST_NAME_RE.match(host):
            raise ConfigError(f"{name}: {part!r} is not a host name, host:port, address or network")
        entries.append(AllowedHost(name=host, port=port))
    return tuple(entries)


def parse_origins(value: str) -> tuple[str, ...]:
    """IMAGEDATA_CORS_ALLOWED_ORIGINS: ``https://a.example, http://b.example:8080`` (or ``*``)."""
    origins = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        parts = urlsplit(part)
        if part != "*" and (parts.scheme not in ("http", "https") or not parts.netloc
                            or parts.path not in ("", "/") or parts.query or parts.fragment):
            raise ConfigError(f"IMAGEDATA_CORS_ALLOWED_ORIGINS: {part!r} is not an origin "
                              "(scheme://host[:port], as the browser sends it)")
        origins.append(part.rstrip("/").lower())
    return tuple(origins)


SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(name: str, value: str) -> int:
    """A number of bytes, with an optional binary unit: ``1073741824``, ``500M``, ``20G``."""
    match = SIZE_RE.match(value or "")
    if not match:
        raise ConfigError(f"{name} must be a number of bytes, optionally with K, M, G or T (e.g. 20G), "
                          f"not {value!r}")
    return int(match.group(1)) * SIZE_UNITS[match.group(2).lower()]


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
        image_size_cap=_int(env, "IMAGEDATA_IMAGE_SIZE_CAP", TIB, minimum=1),
        auth=(env.get("IMAGEDATA_AUTH") or "token").strip(),
        data_admin_only=_bool(env, "IMAGEDATA_DATA_ADMIN_ONLY"),
        upload_lease_seconds=_int(env, "IMAGEDATA_UPLOAD_LEASE_SECONDS", 90, minimum=2),
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
        host_id=(env.get("IMAGEDATA_HOST_ID") or "").strip() or default_host_id(),
        hash_algo=(env.get("IMAGEDATA_HASH_ALGO") or "sha512").strip().lower(),
        resume_seconds=_int(env, "IMAGEDATA_RESUME_SECONDS", 86400),
        keystone_config=(env.get("IMAGEDATA_KEYSTONE_CONFIG") or "").strip(),
        log_format=(env.get("IMAGEDATA_LOG_FORMAT") or "text").strip().lower(),
        metrics_allow=parse_networks("IMAGEDATA_METRICS_ALLOW", env.get("IMAGEDATA_METRICS_ALLOW") or ""),
        web_download_allowed_ports=parse_ports("IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS",
                                               env.get("IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS") or "", (80, 443)),
        web_download_allowed_hosts=parse_allowed_hosts("IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS",
                                                       env.get("IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS") or ""),
        web_download_idle_timeout=float(_int(env, "IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT", 60, minimum=1)),
        cors_allowed_origins=parse_origins(env.get("IMAGEDATA_CORS_ALLOWED_ORIGINS") or ""),
        link_secret=(env.get("IMAGEDATA_LINK_SECRET") or "").strip(),
        link_max_seconds=_int(env, "IMAGEDATA_LINK_MAX_SECONDS", 86400, minimum=1),
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
