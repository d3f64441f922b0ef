"""Background writeback of a file being written, so the final fsync is short."""
from __future__ import annotations

import os
import threading


class Flusher:
    """Starts writeback of what was written so far every ``every`` bytes, off the request thread.

    The final fsync then finds little left to do, instead of stalling the response for
    size / disk bandwidth seconds. ``every == 0`` turns it off.
    """

    def __init__(self, fd: int, every: int):
        self.fd = fd
        self.every = every
        self.next_at = every
        self.wake = threading.Event()
        self.done = False
        self.thread: threading.Thread | None = None

    def advance(self, offset: int) -> None:
        """Note that the file now holds ``offset`` bytes; kick writeback when due."""
        if not self.every or offset < self.next_at:
            return
        self.next_at = offset + self.every
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="writeback", daemon=True)
            self.thread.start()
        self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            if self.done:
                return
            try:
                os.fdatasync(self.fd)
            except OSError:
                pass  # the final fsync reports real errors

    def stop(self) -> None:
        """Stop the thread (idempotent); the caller then fsyncs or closes the file."""
        self.done = True
        if self.thread is not None:
            self.wake.set()
            self.thread.join()
            self.thread = None
