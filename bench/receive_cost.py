#!/usr/bin/env python3
"""CPU cost of receiving an upload body: gunicorn's body reader against the direct path.

A sender thread ``sendfile``\\ s a file through a socket pair; the receiving thread reads it as
the upload does, 1 MiB at a time, once through gunicorn's ``Body`` (the plain path) and once
with the direct source (``imagedata.server.body``) under ``BodyReader`` (``recv_into`` reused page-aligned buffers). It prints the
receiving thread's CPU seconds per GiB (``time.thread_time``), which other work on the
machine hardly moves, unlike wall-clock rates. Run it with the service's virtualenv:

    .venv/bin/python bench/receive_cost.py FILE [REPEATS]
"""
import os
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gunicorn.http.body import Body, LengthReader  # noqa: E402
from gunicorn.http.unreader import SocketUnreader  # noqa: E402

from imagedata.server.body import direct_source  # noqa: E402
from imagedata.service.body import BodyReader  # noqa: E402


def receive(path, direct):
    """Receive the file once; return the receiving thread's CPU seconds per GiB."""
    size = os.path.getsize(path)
    ours, theirs = socket.socketpair()

    def send():
        with open(path, "rb") as fobj:
            theirs.sendfile(fobj)
        theirs.close()

    sender = threading.Thread(target=send)
    sender.start()
    body = Body(LengthReader(SocketUnreader(ours), size))
    started = time.thread_time()
    if direct:
        received = sum(len(piece) for piece in BodyReader(direct_source(body, size), size, 1 << 20,
                                                          settle=lambda _n: None).chunks())
    else:
        received = sum(len(piece) for piece in iter(lambda: body.read(1 << 20), b""))
    cpu = time.thread_time() - started
    sender.join()
    ours.close()
    if received != size:
        raise SystemExit(f"received {received} of {size} bytes")
    return cpu / (size / (1 << 30))


def main(argv):
    """Alternate the two paths and print each run."""
    path, repeats = argv[0], int(argv[1]) if len(argv) > 1 else 3
    for _ in range(repeats):
        for direct in (False, True):
            print(f"{'direct' if direct else 'gunicorn Body'}: {receive(path, direct):.3f} core-s/GiB", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
