"""md5 and the image's multihash of a stream, each in its own low-priority thread.

The request thread only receives and writes; the two digests run beside it over the
same buffers. hashlib releases the GIL while it hashes a large buffer, so the hashing
itself runs outside the worker's GIL, and each hashing thread lowers its own
scheduling priority (Linux nice is per thread): when the cores are busy, requests
that need little CPU (metadata, small ranges, the receiving thread of the upload
itself) get it first, and the bytes wait a little longer.

Buffers handed to ``update`` must not change until the digests are done with them:
pass ``bytes``, or reuse a buffer only after ``wait_backlog`` says it was hashed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading

from imagedata.config import HASH_ALGORITHMS

log = logging.getLogger(__name__)

_STOP = object()
# Nice value of the hashing threads (0 is the default, 19 the lowest priority). At 19 a
# busy hashing thread gets about 1/70 of the CPU a request thread gets while both wait, and
# all the CPU nobody else wants: with four uploads streaming, GET image ran 1345-1453 req/s
# (p99 56 ms) against 1064-1089 (p99 70-76 ms) at nice 10, the uploads 246 vs 255 MiB/s;
# uploads alone (1 or 4 at once) were as fast at 19 as at 10.
HASH_NICE = 19
DEFAULT_ALGORITHM = "sha512"


def check_algorithm(name: str) -> str:
    """The canonical (lower-case) name of a supported ``os_hash_algo``, else ValueError."""
    canonical = (name or "").strip().lower()
    if canonical not in HASH_ALGORITHMS:
        raise ValueError(f"{name!r} is not one of {', '.join(HASH_ALGORITHMS)}")
    return canonical


def _lower_priority(nice: int = HASH_NICE) -> None:
    """Raise the calling thread's nice value (best effort: not every platform has per-thread nice)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), nice))
    except (AttributeError, OSError) as exc:  # pragma: no cover - depends on the platform
        log.debug("could not lower the priority of a hashing thread: %s", exc)


class _HashThread:
    """One digest fed through a bounded queue by the request thread."""

    def __init__(self, name: str, digest, depth: int, progress: threading.Condition, nice: int = HASH_NICE):
        self.digest = digest
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.done = 0  # buffers hashed so far
        self.progress = progress
        self.nice = nice
        self.thread = threading.Thread(target=self._run, name=f"hash-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        _lower_priority(self.nice)
        update = self.digest.update
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            try:
                update(item)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail on buffers
                self.error = exc
            item = None  # drop the reference before waking the producer: the buffer may be reused
            with self.progress:
                self.done += 1
                self.progress.notify_all()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(_STOP)
            self.thread.join()


class OneDigest:
    """One digest of a stream in a helper thread: ``md5`` or a supported ``os_hash_algo``.

    A cache fill checks its copy against one recorded digest (the strongest the record has);
    an upload, which records both, needs ``ParallelDigest``.
    """

    def __init__(self, algorithm: str, depth: int = 4, nice: int = HASH_NICE):
        self.algorithm = "md5" if algorithm == "md5" else check_algorithm(algorithm)
        digest = hashlib.md5(usedforsecurity=False) if self.algorithm == "md5" else hashlib.new(self.algorithm)
        self._worker = _HashThread(self.algorithm, digest, depth, threading.Condition(), nice)

    def update(self, data) -> None:
        """Queue one buffer (blocks when the digest falls ``depth`` buffers behind)."""
        self._worker.queue.put(data)

    def finish(self) -> str:
        """Wait for the digest and return it in hex."""
        self.close()
        if self._worker.error is not None:
            raise self._worker.error
        return self._worker.digest.hexdigest()

    def close(self) -> None:
        """Stop the helper thread after the buffers already queued (idempotent)."""
        self._worker.stop()


class ParallelDigest:
    """md5 and ``algorithm`` (sha512 by default) over the same buffers, in two helper threads."""

    def __init__(self, algorithm: str = DEFAULT_ALGORITHM, depth: int = 4, nice: int = HASH_NICE):
        self.algorithm = check_algorithm(algorithm)
        self.submitted = 0
        self._progress = threading.Condition()
        self._md5 = _HashThread("md5", hashlib.md5(usedforsecurity=False), depth, self._progress, nice)
        self._multihash = _HashThread(self.algorithm, hashlib.new(self.algorithm), depth, self._progress, nice)

    def update(self, data) -> None:
        """Queue one buffer for both digests (blocks when they fall ``depth`` buffers behind)."""
        self.submitted += 1
        self._md5.queue.put(data)
        self._multihash.queue.put(data)

    def backlog(self) -> int:
        """How many of the buffers passed to ``update`` at least one digest has not finished."""
        return self.submitted - min(self._md5.done, self._multihash.done)

    def wait_backlog(self, most: int) -> None:
        """Block until at most ``most`` buffers are still being hashed (their owner may reuse the rest)."""
        with self._progress:
            while self.backlog() > most and self._alive():
                self._progress.wait(1.0)

    def _alive(self) -> bool:
        return self._md5.thread.is_alive() and self._multihash.thread.is_alive()

    def finish(self) -> tuple[str, str]:
        """Wait for both digests and return (md5 hex, multihash hex)."""
        self.close()
        for worker in (self._md5, self._multihash):
            if worker.error is not None:
                raise worker.error
        return self._md5.digest.hexdigest(), self._multihash.digest.hexdigest()

    def close(self) -> None:
        """Stop the helper threads after the buffers already queued (idempotent)."""
        self._md5.stop()
        self._multihash.stop()
