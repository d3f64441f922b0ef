"""md5 and sha512 of a stream, computed in parallel (hashlib releases the GIL)."""
from __future__ import annotations

import hashlib
import queue
import threading

_STOP = object()


class ParallelDigest:
    """md5 in the caller's thread, sha512 in a helper thread, over the same buffers.

    Buffers handed to ``update`` must not be modified afterwards (pass ``bytes``).
    """

    def __init__(self, depth: int = 4):
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sha512", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self.sha512.update(item)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                self._error = exc

    def update(self, data) -> None:
        """Feed one buffer to both digests."""
        self._queue.put(data)
        self.md5.update(data)

    def finish(self) -> tuple[str, str]:
        """Wait for the helper and return (md5 hex, sha512 hex)."""
        self.close()
        if self._error is not None:
            raise self._error
        return self.md5.hexdigest(), self.sha512.hexdigest()

    def close(self) -> None:
        """Stop the helper thread (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
