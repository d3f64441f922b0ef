"""IMAGEDATA_AUTH=noauth makes every caller an admin, so it serves only where only this host can reach.

"Local" means a loopback address (127.0.0.0/8, ::1, or ::ffff:127.x) or a unix socket (whose
file permissions decide who may connect). Three checks, from the strongest:

- ``check_server`` (gunicorn's ``when_ready`` hook) looks at the sockets the master really
  listens on, however they were configured (-b, GUNICORN_CMD_ARGS, IMAGEDATA_BIND, a config
  file, fd://, systemd sockets), and stops the master before any worker starts;
- ``check_worker`` (``post_fork``) does the same for a worker's sockets, which covers
  ``reuse_port`` (each worker binds its own) and a reload that changed the binds;
- ``is_local_peer`` lets the app refuse a request from a non-local peer, for a server started
  without our gunicorn configuration.

This module reads no environment and imports neither Flask nor gunicorn.
"""
from __future__ import annotations

import ipaddress
import sys

WORKER_BOOT_ERROR = 3  # gunicorn's exit status for "worker failed to boot": the master then halts
MASTER_EXIT_STATUS = 1


def is_local_host(host: str) -> bool:
    """Whether an IP address (text) is loopback; IPv4-mapped IPv6 counts as its IPv4 address."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def is_local_address(sockname) -> bool:
    """Whether a socket address (``getsockname()``) is reachable only from this host."""
    if isinstance(sockname, (str, bytes)):  # AF_UNIX, abstract names included
        return True
    return isinstance(sockname, tuple) and bool(sockname) and is_local_host(str(sockname[0]))


def describe(sockname) -> str:
    """A socket address as an operator writes it (``0.0.0.0:9292``, ``[::]:9292``, ``unix:/path``)."""
    if isinstance(sockname, bytes):
        sockname = sockname.decode(errors="replace")
    if isinstance(sockname, str):
        return f"unix:{sockname}"
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def public_addresses(socknames) -> list[str]:
    """The addresses among ``socknames`` that other hosts could reach."""
    return [describe(name) for name in socknames if not is_local_address(name)]


def refusal(addresses: list[str]) -> str:
    """The message an operator sees when noauth is refused."""
    return (f"IMAGEDATA_AUTH=noauth refuses to serve on {', '.join(addresses)}: without authentication "
            "every caller is an admin, so it listens only on loopback addresses or unix sockets. "
            "Bind to 127.0.0.1 (or a unix socket), or choose another IMAGEDATA_AUTH.")


def _socknames(listeners) -> list:
    return [listener.getsockname() for listener in listeners]


def check_server(server, auth: str) -> None:
    """gunicorn ``when_ready``: halt the master (exit 1, no worker started) if noauth listens publicly."""
    if auth != "noauth":
        return
    public = public_addresses(_socknames(server.LISTENERS))
    if public:
        server.log.error(refusal(public))
        server.halt(reason="IMAGEDATA_AUTH=noauth on a non-loopback address", exit_status=MASTER_EXIT_STATUS)


def check_worker(worker, auth: str) -> None:
    """gunicorn ``post_fork``: a worker serving noauth on a public socket exits before loading the app."""
    if auth != "noauth":
        return
    public = public_addresses(_socknames(worker.sockets))
    if public:
        worker.log.error(refusal(public))
        sys.exit(WORKER_BOOT_ERROR)


def is_local_peer(remote_addr: str | None) -> bool:
    """Whether a request's peer (WSGI ``REMOTE_ADDR``) is this host: loopback, or a unix socket's empty address."""
    return remote_addr == "" or (remote_addr is not None and is_local_host(remote_addr))


def check_bind_setting(bind: str) -> list[str]:
    """The entries of IMAGEDATA_BIND that are not loopback (an early, declared-intent check).

    ``unix:`` paths are local; ``fd://`` sockets are judged by ``check_server`` once they exist.
    Host names other than ``localhost`` are refused: what they resolve to can change.
    """
    public = []
    for entry in filter(None, (part.strip() for part in bind.split(","))):
        if entry.startswith(("unix:", "fd://")):
            continue
        entry = entry.removeprefix("tcp://")
        host = entry.rsplit(":", 1)[0] if entry.count(":") == 1 or entry.startswith("[") else entry
        host = host.strip("[]")
        if host != "localhost" and not is_local_host(host):
            public.append(entry)
    return public
