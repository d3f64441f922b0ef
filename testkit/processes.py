"""Waiting for and stopping the processes a test run or a benchmark started: always by pid."""
from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
import urllib.parse


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (gunicorn's or nginx's workers), from /proc."""
    pids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            continue
    return sorted(set(pids))


def start_time(pid: int) -> int | None:
    """The kernel start time of ``pid`` (to tell a reused pid apart), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of ``GET url`` (no proxy, no redirect), or None when nothing answered."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def wait_until_answering(proc: subprocess.Popen, url: str, timeout: float, what: str, log,
                         error: type[Exception] = RuntimeError, interval: float = 0.1,
                         request_timeout: float = 1.0) -> None:
    """Poll ``url`` until it answers 200; raise ``error`` (with ``log()``) if the process exits
    or ``timeout`` passes, stopping it in the second case."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise error(f"{what} exited: {log()}")
        if http_status(url, request_timeout) == 200:
            return
        time.sleep(interval)
    stop_process(proc)
    raise error(f"{what} did not answer in {timeout}s: {log()}")


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 20.0,
                 known_children: dict[int, int | None] | None = None) -> None:
    """Send ``sig`` to a process we started (by its pid) and SIGKILL it if it hangs; then SIGKILL
    its children that outlived it (those seen now and ``known_children``, pid -> start time), so a
    killed master leaves no worker behind. A pid that was reused since is never touched."""
    if proc is None or proc.poll() is not None:
        return
    children = dict(known_children or {})
    for pid in child_pids(proc.pid):
        children.setdefault(pid, start_time(pid))
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pid, started in children.items():
        if started is not None and start_time(pid) == started and pid_running(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def log_tail(path, chars: int = 3000) -> str:
    """The last ``chars`` characters of a log file ("" when it cannot be read)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()[-chars:]
    except OSError:
        return ""
