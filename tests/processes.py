"""Starting and stopping the real servers the tests run (gunicorn, nginx, Keystone, SeaweedFS)."""
from __future__ import annotations

import signal
import subprocess
import time

import requests


def wait_until_answering(proc: subprocess.Popen, url: str, timeout: float, what: str, log,
                         error: type[Exception] = RuntimeError, interval: float = 0.1,
                         request_timeout: float = 1.0) -> None:
    """Poll ``url`` until it answers 200; raise ``error`` (with ``log()``) if the process exits
    or ``timeout`` passes, stopping it in the second case."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise error(f"{what} exited: {log()}")
        try:
            if requests.get(url, timeout=request_timeout).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(interval)
    stop_process(proc)
    raise error(f"{what} did not answer in {timeout}s: {log()}")


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Send ``sig`` to a process this test run started (by its pid); SIGKILL it if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
