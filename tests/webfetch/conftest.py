"""Fixtures of the web-download tests: loopback origins, the data they serve, policies."""
from __future__ import annotations

import ipaddress
import random
import threading
import time

import pytest

from imagedata.config import AllowedHost
from imagedata.service.webfetch import FetchPolicy, SourceCut, SourceRestarted
from tests.webfetch.origin import Origin

MIB = 1 << 20


@pytest.fixture(scope="module")
def data() -> bytes:
    """32 MiB that differ at every offset (a spliced download cannot compare equal)."""
    return random.Random(27).randbytes(32 * MIB)


@pytest.fixture
def origins():
    """Start origins with ``origins(data, **faults)``; all are stopped after the test."""
    started = []

    def start(*args, **kwargs) -> Origin:
        origin = Origin(*args, **kwargs).start()
        started.append(origin)
        return origin

    yield start
    for origin in started:
        origin.stop()


def allowing(*origins: Origin, **options) -> FetchPolicy:
    """A policy whose IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS lists exactly these origins."""
    entries = tuple(AllowedHost(network=ipaddress.ip_network(o.host), port=o.port) for o in origins)
    return FetchPolicy(allowed_hosts=entries, **options)


def read_all(source, buffer_size: int = MIB) -> tuple[bytes, list]:
    """Everything ``source`` gives, starting over on SourceRestarted as an import does;
    returns the bytes and the restart reasons."""
    out, reasons = bytearray(), []
    buffer = bytearray(buffer_size)
    while True:
        try:
            count = source.readinto(buffer)
        except SourceRestarted as restart:
            out.clear()
            reasons.append(restart.reason)
            continue
        if not count:
            return bytes(out), reasons
        out += buffer[:count]


def assert_cut_stops_a_stalled_read(source, first: int) -> None:
    """With the server silent after ``first`` bytes, a cut from another thread ends the waiting
    read at once (not at the idle timeout) with SourceCut, never as the end of the data."""
    assert len(source.read(first)) == first
    threading.Timer(0.3, source.cut).start()
    started = time.monotonic()
    with pytest.raises(SourceCut, match=f"stopped after {first} bytes"):
        source.read(MIB)
    assert time.monotonic() - started < 5
    with pytest.raises(SourceCut):  # and it stays cut: nothing reconnects
        source.read(1)
