"""The deployment a soak runs against, and the faults it suffers.

Two imagedata hosts (the production gunicorn.conf.py, two workers each) on one PostgreSQL
and one SeaweedFS bucket, behind nginx running deploy/nginx/imagedata.conf, as README's
"Scaling out" describes. PostgreSQL and SeaweedFS are private to the soak, because it
restarts the one and pauses the other. Everything is stopped by pid.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import requests

from tests.databases import PostgresCluster
from testkit.nginx import SiteProxy
from testkit.processes import pid_running
from tests.e2e.server import Server
from tests.seaweed import SeaweedFS

MIB = 1 << 20
LEASE = 12
IDLE = 8
BUCKET = "soak"
PREFIX = "images"
QUOTA_PROJECT = "tight"  # a project whose quota refuses every upload bigger than 1 MiB (413)


class Cluster:
    """PostgreSQL, SeaweedFS, hosts "a" and "b", nginx; tokens for the soak's projects."""

    def __init__(self, root):
        self.root = str(root)
        self.pg = self.weed = self.nginx = None
        self.hosts: dict[str, Server] = {}
        self.tokens: dict[str, str] = {}

    def start(self) -> "Cluster":
        """Start everything (PostgreSQL first, then the hosts one after the other, then nginx)."""
        self.pg = PostgresCluster().start()
        self.database = self.pg.create_database("imagedata_soak")
        self.weed = SeaweedFS(os.path.join(self.root, "seaweedfs")).start()
        self.weed.make_bucket(BUCKET)
        shared = {"IMAGEDATA_DATABASE_URL": self.pg.url(self.database),
                  "IMAGEDATA_STORES": f"images={self.weed.store_url(BUCKET, PREFIX)}",
                  "IMAGEDATA_UPLOAD_LEASE_SECONDS": LEASE, "IMAGEDATA_UPLOAD_IDLE_TIMEOUT": IDLE,
                  # A default quota: every upload takes and returns a reservation.
                  "IMAGEDATA_QUOTA_IMAGE_SIZE_TOTAL": 1 << 40, **self.weed.env()}
        for name in ("a", "b"):  # one after the other: the first sets up the schema
            self.hosts[name] = Server(os.path.join(self.root, f"host-{name}"), IMAGEDATA_HOST_ID=f"host-{name}",
                                      **shared).start()
        self.nginx = SiteProxy(os.path.join(self.root, "nginx"), [h.port for h in self.hosts.values()],
                           os.path.join(self.root, "unused-stores")).start()
        a = self.hosts["a"]
        self.tokens = {"tight": a.token(QUOTA_PROJECT), "admin": a.token("ops", "admin")}
        a.cli("quota", "set", "--project", QUOTA_PROJECT, "--image-size-total", str(MIB))
        return self

    def tokens_of(self, project: str) -> dict:
        """The tokens a client uses: its own project's ("member"), and the shared ones.

        Each client has a project of its own: with a quota, an upload of unknown size
        (chunked) reserves all that is left of its project's quota while it streams.
        """
        if project not in self.tokens:
            self.tokens[project] = self.hosts["a"].token(project)
        return {**self.tokens, "member": self.tokens[project]}

    def stop(self) -> None:
        """Stop what started (nginx, hosts, SeaweedFS, PostgreSQL), whatever state it is in."""
        if self.weed is not None and self.weed.proc is not None and self.weed.proc.poll() is None:
            os.kill(self.weed.proc.pid, signal.SIGCONT)
        for part in [self.nginx, *self.hosts.values(), self.weed, self.pg]:
            if part is not None:
                part.stop()

    @property
    def url(self) -> str:
        """Where clients go: nginx."""
        return self.nginx.url

    def s3(self):
        """A boto3 client of the soak's SeaweedFS."""
        return self.weed.client()

    # ---------------------------------------------------------------- faults

    def kill_and_restart(self, name: str, down: float, killing=None) -> dict:
        """SIGKILL host ``name`` (master and workers), restart it after ``down`` seconds;
        ``killing()`` is called right before the kill."""
        host = self.hosts[name]
        if killing is not None:
            killing()
        killed = host.kill_all()
        assert not any(pid_running(pid) for pid in killed)
        time.sleep(down)
        started = time.monotonic()
        host.start(timeout=60)
        return {"killed_pids": len(killed), "restart_seconds": round(time.monotonic() - started, 1)}

    def reload(self, name: str) -> dict:
        """SIGHUP host ``name``'s master: new workers, the old ones finish gracefully."""
        host = self.hosts[name]
        before = set(host.worker_pids())
        os.kill(host.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not host.new_workers(before):
            time.sleep(0.2)
        return {"old_workers_left": len(set(host.worker_pids()) & before)}

    def pause_seaweedfs(self, seconds: float) -> dict:
        """SIGSTOP SeaweedFS (master, volume, filer and S3 gateway in one process) for ``seconds``."""
        pid = self.weed.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        return {}

    def restart_postgres(self) -> dict:
        """Fast shutdown of PostgreSQL (every connection cut) and start again on the same port."""
        started = time.monotonic()
        self.pg.restart()
        return {"down_seconds": round(time.monotonic() - started, 2)}

    # ---------------------------------------------------------------- observation

    def pg_connections(self) -> int | None:
        """Connections to the soak's database now (None while PostgreSQL is down)."""
        try:
            con = self.pg.connect()
        except Exception:
            return None
        try:
            with con.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,))
                return cur.fetchone()[0]
        finally:
            con.close()


def worker_usage(host: Server) -> list[tuple[int, int, int]]:
    """(pid, RSS KiB, open files) of each worker of a host."""
    found = []
    try:
        pids = host.worker_pids()
    except OSError:
        return found
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            found.append((pid, rss, len(os.listdir(f"/proc/{pid}/fd"))))
        except (OSError, StopIteration):
            continue
    return found


class Sampler:
    """Every ``interval`` seconds: each worker's RSS and open files, PostgreSQL's connections."""

    def __init__(self, cluster: Cluster, interval: float = 2.0):
        self.cluster, self.interval = cluster, interval
        self.workers: list[tuple[float, str, int, int, int]] = []  # (t, host, pid, rss KiB, fds)
        self.connections: list[tuple[float, int]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def start(self, epoch: float) -> "Sampler":
        self.epoch = epoch
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Take one sample now."""
        now = time.monotonic() - self.epoch
        for name, host in self.cluster.hosts.items():
            if host.proc is not None and host.proc.poll() is None:
                self.workers += [(now, name, pid, rss, fds) for pid, rss, fds in worker_usage(host)]
        count = self.cluster.pg_connections()
        if count is not None:
            self.connections.append((now, count))

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def wait_answering(url: str, timeout: float = 30.0) -> None:
    """Until ``url`` answers 200 (a host or nginx after a fault)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer in {timeout}s")
