"""Deterministic pseudo-random test data, generated on the fly (never held in memory)."""
from __future__ import annotations

import hashlib

MIB = 1 << 20


def block(seed: int, index: int) -> bytes:
    """One MiB of reproducible bytes."""
    head = hashlib.sha512(f"{seed}:{index}".encode()).digest()
    return (head * (MIB // len(head)))[:MIB]


def chunks(seed: int, size: int, piece: int = MIB):
    """Yield ``size`` bytes in pieces of ``piece`` bytes."""
    sent = 0
    index = 0
    while sent < size:
        data = block(seed, index)
        index += 1
        for start in range(0, len(data), piece):
            part = data[start:start + piece][: size - sent]
            if not part:
                break
            sent += len(part)
            yield part
            if sent >= size:
                return


def digest(seed: int, size: int) -> str:
    """sha512 hex of the stream ``chunks(seed, size)``."""
    h = hashlib.sha512()
    for part in chunks(seed, size):
        h.update(part)
    return h.hexdigest()


def slice_of(seed: int, size: int, start: int, length: int) -> bytes:
    """The bytes [start, start+length) of the stream (only small slices)."""
    out = bytearray()
    pos = 0
    for part in chunks(seed, size):
        end = pos + len(part)
        if end > start and pos < start + length:
            out += part[max(0, start - pos): start + length - pos]
        pos = end
        if pos >= start + length:
            break
    return bytes(out)


class SizedBody:
    """A file-like upload body of ``size`` bytes drawn from ``pieces`` (an iterable of bytes):
    its ``len`` makes requests send Content-Length instead of chunked framing."""

    def __init__(self, pieces, size: int):
        self.iterator, self.len, self.buffer = iter(pieces), size, b""

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all that is left when ``n`` < 0); b"" at the end."""
        while n < 0 or len(self.buffer) < n:
            try:
                self.buffer += next(self.iterator)
            except StopIteration:
                break
        n = len(self.buffer) if n < 0 else n
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out
