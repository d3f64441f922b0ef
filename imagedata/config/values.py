"""The parsers of single settings: numbers, flags, sizes, networks, ports, hosts, origins;
each error names the variable."""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


# A DNS name: letters, digits, hyphens and (seen in the wild) underscores, dot-separated.
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
HOST_NAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")


def env_int(env: dict, name: str, default: int, minimum: int = 0) -> int:
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


def env_bool(env: dict, name: str, default: bool = False) -> bool:
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
