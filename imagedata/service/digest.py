"""md5 and sha512 of a stream, each in its own thread (hashlib releases the GIL).

The request thread only receives and writes; the two digests run beside it over
the same immutable buffers, so on two cores the upload is bound by the slower
digest rather than by the sum of everything.
"""
from __future__ import annotations

import hashlib
import queue
import threading

_STOP = object()


class _HashThread:
    """One digest fed through a bounded queue by the request thread."""

    def __init__(self, name: str, digest, depth: int):
        self.digest = digest
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            try:
                self.digest.update(item)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                self.error = exc

    def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(_STOP)
            self.thread.join()


class ParallelDigest:
    """md5 and sha512 over the same buffers, computed in two helper threads.

    Buffers handed to ``update`` must not be modified afterwards (pass ``bytes``).
    """

    def __init__(self, depth: int = 4):
        self._md5 = _HashThread("md5", hashlib.md5(usedforsecurity=False), depth)
        self._sha512 = _HashThread("sha512", hashlib.sha512(), depth)

    def update(self, data) -> None:
        """Queue one buffer for both digests (blocks when they fall ``depth`` buffers behind)."""
        self._md5.queue.put(data)
        self._sha512.queue.put(data)

    def finish(self) -> tuple[str, str]:
        """Wait for both digests and return (md5 hex, sha512 hex)."""
        self.close()
        for worker in (self._md5, self._sha512):
            if worker.error is not None:
                raise worker.error
        return self._md5.digest.hexdigest(), self._sha512.digest.hexdigest()

    def close(self) -> None:
        """Stop the helper threads (idempotent)."""
        self._md5.stop()
        self._sha512.stop()
