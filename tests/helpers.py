"""Helpers shared by the Flask-client test modules."""
from __future__ import annotations

import io

import pytest

OCTET = "application/octet-stream"


def with_env(**settings):
    """Run one test with extra IMAGEDATA_* settings (applied by the ``env_extra`` fixture)."""
    return pytest.mark.parametrize("env_extra", [settings], indirect=True, ids=["env"])


class Body(io.RawIOBase):
    """An upload body served in small pieces; ``on_read(n)`` runs before the n-th read (from 1)."""

    def __init__(self, data: bytes, piece: int = 4, on_read=None):
        super().__init__()
        self.data, self.pos, self.piece, self.on_read, self.reads = data, 0, piece, on_read, 0

    def readable(self):
        return True

    def read(self, size=-1):
        self.reads += 1
        if self.on_read is not None:
            self.on_read(self.reads)
        if size is None or size < 0:
            size = len(self.data)
        chunk = self.data[self.pos:self.pos + min(size, self.piece)]
        self.pos += len(chunk)
        return chunk


def skip_or_fail(reason: str):
    """Skip a test whose tool cannot run here, except in CI (IMAGEDATA_TEST_REQUIRE_ALL=1),
    where nothing the issues ask for may be skipped: there it fails with the reason."""
    import os

    if os.environ.get("IMAGEDATA_TEST_REQUIRE_ALL") == "1":
        pytest.fail(f"required for CI: {reason}", pytrace=False)
    pytest.skip(reason)
