"""Run the real service under gunicorn (the production gunicorn.conf.py) on a free loopback port."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from tests.processes import stop_process, wait_until_answering

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-5000:]
        except OSError:
            return ""

    def cli(self, *args: str) -> str:
        """Run the `imagedata` command against this server's configuration; returns stdout."""
        done = subprocess.run([os.path.join(BIN, "imagedata"), *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"imagedata {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def token(self, project: str = "p1", roles: str = "member,reader") -> str:
        """A new token (the last line the CLI prints)."""
        return self.cli("token", "create", "--project", project, "--roles", roles).strip().splitlines()[-1]

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (children of the master we started)."""
        pids = []
        for task in os.listdir(f"/proc/{self.proc.pid}/task"):
            with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        return pids

    def store_files(self) -> list[str]:
        """Every file in the server's stores."""
        found = []
        for root, _dirs, files in os.walk(os.path.join(self.root, "stores")):
            found += [os.path.join(root, f) for f in files]
        return sorted(found)


def pid_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]
