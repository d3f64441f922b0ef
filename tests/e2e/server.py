"""Run the real service under gunicorn (the production gunicorn.conf.py) on a free loopback port."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from testkit.ports import free_port
from testkit.processes import child_pids, log_tail, pid_running, stop_process, wait_until_answering

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


class Server:
    """A gunicorn master started by a test; stopped by pid, never by name."""

    def __init__(self, root, **env):
        self.root = str(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("IMAGEDATA_") and k not in ("GUNICORN_CMD_ARGS", "PROMETHEUS_MULTIPROC_DIR")}
        self.env.update({
            "IMAGEDATA_DATA_DIR": f"{self.root}/data",
            "IMAGEDATA_STORES": f"local=file://{self.root}/stores/local,slow=file://{self.root}/stores/slow",
            "IMAGEDATA_BIND": f"127.0.0.1:{self.port}",
            # gunicorn's own settings go through its flags (pass GUNICORN_CMD_ARGS to change them).
            "GUNICORN_CMD_ARGS": "--workers 2",
        })
        self.env.update({k: str(v) for k, v in env.items()})
        self.log_path = os.path.join(self.root, "gunicorn.log")
        self.proc = None
        self.preexec_fn = None  # e.g. to set resource limits on the server process
        self.wrapper: list[str] = []  # a command that runs gunicorn (e.g. in its own mount namespace)

    def start(self, timeout: float = 30.0) -> "Server":
        """Start gunicorn and wait until /versions answers."""
        os.makedirs(self.root, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([*self.wrapper, os.path.join(BIN, "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                                     cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=self.preexec_fn)
        log.close()
        wait_until_answering(self.proc, f"{self.url}/versions", timeout, "gunicorn", self.log)
        return self

    def stop(self) -> None:
        """SIGTERM the master we started (it stops its workers); SIGKILL if it hangs."""
        stop_process(self.proc)

    def kill_all(self, timeout: float = 10.0) -> list[int]:
        """SIGKILL the master and each of its workers, by pid; wait until all are gone."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        pids = [self.proc.pid] + self.worker_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while any(pid_running(pid) for pid in pids[1:]) and time.monotonic() < deadline:
            time.sleep(0.02)
        return pids

    @property
    def db_path(self) -> str:
        """The SQLite database file of this server (when it runs on SQLite)."""
        return os.path.join(self.root, "data", "imagedata.db")

    @property
    def database_url(self) -> str:
        """The database this server runs on: IMAGEDATA_DATABASE_URL, else its SQLite file."""
        return self.env.get("IMAGEDATA_DATABASE_URL") or f"sqlite:///{self.db_path}"

    def run_cli(self, *args: str) -> subprocess.CompletedProcess:
        """Run the `imagedata` command and return the completed process (whatever its exit code)."""
        return subprocess.run([os.path.join(BIN, "imagedata"), *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=60)

    def log(self) -> str:
        """The server's combined output so far."""
        return log_tail(self.log_path, 5000)

    def cli(self, *args: str) -> str:
        """Run the `imagedata` command against this server's configuration; returns stdout."""
        done = self.run_cli(*args)
        if done.returncode != 0:
            raise RuntimeError(f"imagedata {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def token(self, project: str = "p1", roles: str = "member,reader") -> str:
        """A new token (the last line the CLI prints)."""
        return self.cli("token", "create", "--project", project, "--roles", roles).strip().splitlines()[-1]

    def worker_pids(self) -> list[int]:
        """The gunicorn workers alive now (children of the master we started). A worker that died
        but is not yet reaped is left out: until the master reaps it, its exit hooks have not run."""
        return [pid for pid in child_pids(self.proc.pid) if pid_running(pid)]

    def new_workers(self, old: set[int], count: int = 2) -> set[int] | None:
        """The workers, once ``count`` run and none of ``old`` is among them; else None. One
        look at the process table: two looks could each see a different moment."""
        pids = set(self.worker_pids())
        return pids if len(pids) >= count and not pids & old else None

    def store_files(self) -> list[str]:
        """Every file in the server's stores."""
        found = []
        for root, _dirs, files in os.walk(os.path.join(self.root, "stores")):
            found += [os.path.join(root, f) for f in files]
        return sorted(found)


class Servers:
    """Starts servers in folders under ``base`` and stops every one of them in ``stop_all``."""

    def __init__(self, base):
        self.base = Path(base)
        self.made: list[Server] = []

    def __call__(self, name: str | None = None, *, start: bool = True, **env) -> Server:
        """A server in ``base/name`` (``srv0``, ``srv1``, ... when unnamed) with these settings,
        started unless ``start=False`` (to change ``env`` first). A name used again is the same
        folder: a restart on the same data."""
        srv = Server(self.base / (name or f"srv{len(self.made)}"), **env)
        self.made.append(srv)
        return srv.start() if start else srv

    def stop_all(self) -> None:
        """Stop every server made here that still runs, newest first."""
        for srv in reversed(self.made):
            srv.stop()


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]
