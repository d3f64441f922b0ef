"""Start and stop the servers the benchmark compares, on 127.0.0.1 only.

Every process is started here, in its own session, and is stopped by the pid
recorded at start (plus the worker pids recorded while it ran), never by
name.  ``ProcessGroup`` is a context manager and also registers an atexit
hook, so an exception or Ctrl-C still cleans up.
"""

import atexit
import os
import subprocess
from pathlib import Path

from testkit.nginx import Nginx, deploy_site
from testkit.ports import LOOPBACK, free_port
from testkit.processes import child_pids, start_time, stop_process, wait_until_answering


class ManagedProcess:
    """A process we started: stopped by its own pid and its recorded children."""

    def __init__(self, name, argv, cwd, env, log_path):
        self.name = name
        self.log_path = Path(log_path)
        self.log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                      stdout=self.log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        self.pid = self.popen.pid
        self.known_children = {}

    def alive(self):
        """True while the process has not exited."""
        return self.popen.poll() is None

    def children(self):
        """Return the current children and remember them (pid -> start time)."""
        pids = child_pids(self.pid) if self.alive() else []
        for pid in pids:
            self.known_children.setdefault(pid, start_time(pid))
        return pids

    def log_tail(self, lines=20):
        """Return the last lines of the process log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout=20):
        """SIGTERM the process, SIGKILL it after ``timeout``, then its leftover children."""
        self.children()
        stop_process(self.popen, timeout=timeout, known_children=self.known_children)
        self.log.close()


class ProcessGroup:
    """Owns every process the benchmark starts and stops them all at the end, newest first."""

    def __init__(self):
        self.cleanups = []  # (what, function), in the order they were registered
        atexit.register(self.close)

    def start(self, name, argv, cwd, env, log_path):
        """Start and track a ManagedProcess."""
        proc = ManagedProcess(name, argv, cwd, env, log_path)
        self.on_close(proc.stop, f"stopping {name} (pid {proc.pid})")
        return proc

    def on_close(self, func, what="cleanup step"):
        """Run ``func`` at close (for servers that stop themselves, and other cleanup)."""
        self.cleanups.append((what, func))

    def close(self):
        """Run every cleanup, newest first; never raises."""
        while self.cleanups:
            what, func = self.cleanups.pop()
            try:
                func()
            except Exception as exc:  # cleanup must go on
                print(f"bench: {what} failed: {exc!r}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


BENCH_HTTP = """\
    types {{ }}
    default_type application/octet-stream;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_timeout 65;
    server {{
        listen {host}:{port} backlog=4096;
        root {www};
        location /files/ {{ }}
        location /dav/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            client_max_body_size 0;
            client_body_buffer_size 1m;
        }}
    }}
"""


class NginxServer(Nginx):
    """A private nginx: GET /files/NAME (sendfile, tcp_nopush off), PUT /dav/NAME; with ``accel``
    (the keywords of ``deploy_site``, bar the listen address), also the service's production site
    in X-Accel-Redirect mode on a second port."""

    ready_path = "/files/.ready"

    def __init__(self, group, workdir, accel=None):
        super().__init__(Path(workdir) / "nginx", workers=2, connections=4096)
        group.on_close(self.stop, "stopping nginx")
        self.www = self.prefix / "www"
        self.accel = accel
        self.accel_addr = (LOOPBACK, free_port()) if accel else None

    @property
    def files_dir(self):
        """Folder served under /files/."""
        return self.www / "files"

    @property
    def dav_dir(self):
        """Folder that receives PUT /dav/NAME."""
        return self.www / "dav"

    def http_config(self):
        """The files and WebDAV server, and the deploy site in --accel mode."""
        for folder in (self.files_dir, self.dav_dir):
            folder.mkdir(parents=True, exist_ok=True)
        text = BENCH_HTTP.format(host=LOOPBACK, port=self.port, www=self.www)
        if self.accel:
            text += deploy_site(listen=f"{LOOPBACK}:{self.accel_addr[1]} backlog=4096", **self.accel)
        return text

    def start(self, timeout=15):
        """Check the config, start nginx in the foreground and wait for it."""
        self.files_dir.mkdir(parents=True, exist_ok=True)
        (self.files_dir / ".ready").write_text("ok")
        return super().start(timeout)


class ImagedataServer:
    """Our service under gunicorn with the repository's production gunicorn.conf.py."""

    def __init__(self, group, repo, bin_dir, workdir, workers=None, extra_env=None):
        self.group = group
        self.repo = Path(repo)
        self.bin_dir = Path(bin_dir)
        self.workdir = Path(workdir) / "imagedata"
        self.store_parent = self.workdir / "stores"
        self.port = free_port()
        self.addr = (LOOPBACK, self.port)
        self.workers_arg = ["--workers", str(workers)] if workers else []
        self.env = self.make_env(extra_env or {})
        self.proc = None
        self.token = None

    def make_env(self, extra_env):
        """Return the environment for the CLI and gunicorn."""
        env = dict(os.environ)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["IMAGEDATA_DATA_DIR"] = str(self.workdir / "data")
        env["IMAGEDATA_STORES"] = f"local=file://{self.store_parent / 'local'}"
        env["IMAGEDATA_BIND"] = f"{LOOPBACK}:{self.port}"
        env.update(extra_env)
        return env

    def run_cli(self, *args):
        """Run ``imagedata ARGS`` and return its stdout; raise with stderr on failure."""
        result = subprocess.run([str(self.bin_dir / "imagedata"), *args], cwd=self.repo,
                                env=self.env, capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"imagedata {' '.join(args)} exited {result.returncode}: "
                               f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return result.stdout

    def start(self, timeout=30):
        """Create the tables, a token, then start gunicorn and wait for /versions."""
        for sub in ("data", "stores/local"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.run_cli("db-sync")
        out = self.run_cli("token", "create", "--project", "bench", "--roles", "admin,member,reader")
        self.token = out.strip().splitlines()[-1].strip()
        # A private control socket: gunicorn's default ($HOME/.gunicorn/gunicorn.ctl) is shared
        # by every gunicorn of this user, and ours must not replace another instance's.
        argv = [str(self.bin_dir / "gunicorn"), "-c", "gunicorn.conf.py",
                "--control-socket", str(self.workdir / "gunicorn.ctl"), *self.workers_arg, "wsgi:app"]
        self.proc = self.group.start("gunicorn", argv, self.repo, self.env, self.workdir / "gunicorn.log")
        wait_until_answering(self.proc.popen, f"http://{LOOPBACK}:{self.port}/versions", timeout, "gunicorn",
                             lambda: f"\n--- gunicorn log ---\n{self.proc.log_tail()}", interval=0.2,
                             request_timeout=5)

    def workers(self):
        """Return the pids of the gunicorn workers (children of our master)."""
        return self.proc.children()


class GlanceServer:
    """The real Glance from the peers kit, noauth, started and stopped by its scripts."""

    def __init__(self, group, kit_dir, peers_dir):
        self.group = group
        self.kit = Path(kit_dir) / "glance"
        self.peers_dir = Path(peers_dir)
        self.port = free_port()
        self.addr = (LOOPBACK, self.port)

    def missing(self):
        """Return why Glance cannot run here, or None."""
        if not (self.kit / "start.sh").exists():
            return f"no kit at {self.kit}"
        if not (self.peers_dir / "glance-venv" / "bin" / "uwsgi").exists():
            return f"no glance-venv in {self.peers_dir} (run {self.kit}/install.sh)"
        return None

    def env(self):
        """Environment for start.sh/stop.sh."""
        env = dict(os.environ, IMAGEDATA_PEERS_DIR=str(self.peers_dir), GLANCE_PORT=str(self.port),
                   GLANCE_AUTH="noauth", GLANCE_MODE="multi")
        return env

    def start(self):
        """Run start.sh (waits for /versions) and register stop.sh for cleanup."""
        result = subprocess.run(["bash", str(self.kit / "start.sh")], env=self.env(),
                                capture_output=True, text=True, timeout=300)
        if result.returncode:
            raise RuntimeError(f"glance start.sh exited {result.returncode}: "
                               f"{(result.stderr or result.stdout).strip()[-1500:]}")
        self.group.on_close(self.stop)

    def stop(self):
        """Run stop.sh (it stops only the uWSGI it started, by pid file)."""
        subprocess.run(["bash", str(self.kit / "stop.sh")], env=self.env(),
                       capture_output=True, text=True, timeout=90)
