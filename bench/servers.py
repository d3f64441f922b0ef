"""Start and stop the servers the benchmark compares, on 127.0.0.1 only.

Every process is started here, in its own session, and is stopped by the pid
recorded at start (plus the worker pids recorded while it ran), never by
name.  ``ProcessGroup`` is a context manager and also registers an atexit
hook, so an exception or Ctrl-C still cleans up.
"""

import atexit
import getpass
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import rawhttp

LOOPBACK = "127.0.0.1"


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def child_pids(pid):
    """Return the pids of the direct children of ``pid`` (from /proc)."""
    pids = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids += [int(p) for p in children.read_text().split()]
        except OSError:
            continue
    return sorted(set(pids))


def start_time(pid):
    """Return the kernel start time of ``pid`` (to recognise pid reuse), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def wait_http_ok(addr, path, deadline, alive=lambda: True, headers=None):
    """Poll GET ``path`` until it answers 200; raise RuntimeError at ``deadline``."""
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"server exited while waiting for {path} ({last})")
        try:
            resp = rawhttp.request(addr, "GET", path, headers, timeout=5)
            if resp.status == 200:
                return
            last = f"HTTP {resp.status}"
        except rawhttp.HTTPFailure as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"GET {path} did not answer 200 in time ({last})")


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
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        for pid, started in self.known_children.items():
            if started is not None and start_time(pid) == started:
                os.kill(pid, signal.SIGKILL)
        self.log.close()


class ProcessGroup:
    """Owns every process the benchmark starts and stops them all at the end."""

    def __init__(self):
        self.processes = []
        self.stoppers = []
        atexit.register(self.close)

    def start(self, name, argv, cwd, env, log_path):
        """Start and track a ManagedProcess."""
        proc = ManagedProcess(name, argv, cwd, env, log_path)
        self.processes.append(proc)
        return proc

    def on_close(self, func):
        """Run ``func`` at close (for servers stopped by their own script)."""
        self.stoppers.append(func)

    def close(self):
        """Stop everything, newest first; never raises."""
        while self.stoppers:
            try:
                self.stoppers.pop()()
            except Exception as exc:  # cleanup must go on
                print(f"bench: cleanup step failed: {exc!r}")
        while self.processes:
            proc = self.processes.pop()
            try:
                proc.stop()
            except Exception as exc:
                print(f"bench: stopping {proc.name} (pid {proc.pid}) failed: {exc!r}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user_line}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    types {{ }}
    default_type application/octet-stream;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    sendfile on;
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
{accel_server}}}
"""

# The service's optional X-Accel-Redirect mode runs behind the production nginx site
# (deploy/nginx/imagedata.conf), with this run's ports, store folder and prefix.
DEPLOY_SITE = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "imagedata.conf"


def accel_site(host, port, accel_prefix, store_parent, upstream):
    """The deploy site for the X-Accel benchmark (each replaced line must be there once)."""
    text = DEPLOY_SITE.read_text()
    prefix = "/" + accel_prefix.strip("/") + "/"
    for old, new in (("server 127.0.0.1:9292;", f"server {upstream};"),
                     ("listen 80;", f"listen {host}:{port} backlog=4096;"),
                     ("alias /srv/imagedata/stores/;", f"alias {store_parent}/;"),
                     ("location /_accel/ {", f"location {prefix} {{")):
        if text.count(old) != 1:
            raise RuntimeError(f"{DEPLOY_SITE}: expected {old!r} exactly once")
        text = text.replace(old, new)
    return text


def user_line():
    """Run nginx workers as the current user (only meaningful when root)."""
    if os.geteuid() != 0:
        return ""
    return f"user {getpass.getuser()} {grp.getgrgid(pwd.getpwuid(os.getuid()).pw_gid).gr_name};"


class NginxServer:
    """A private nginx: GET /files/NAME (sendfile, tcp_nopush off), PUT /dav/NAME."""

    def __init__(self, group, workdir, accel=None):
        self.prefix = Path(workdir) / "nginx"
        self.www = self.prefix / "www"
        self.port = free_port()
        self.addr = (LOOPBACK, self.port)
        self.accel = accel
        self.accel_addr = (LOOPBACK, free_port()) if accel else None
        self.group = group
        self.proc = None

    @property
    def files_dir(self):
        """Folder served under /files/."""
        return self.www / "files"

    @property
    def dav_dir(self):
        """Folder that receives PUT /dav/NAME."""
        return self.www / "dav"

    def write_config(self):
        """Write nginx.conf into the private prefix and return its path."""
        for sub in ("tmp", "www/files", "www/dav"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        accel_server = ""
        if self.accel:
            accel_server = accel_site(LOOPBACK, self.accel_addr[1], **self.accel)
        conf = self.prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=self.prefix, user_line=user_line(), host=LOOPBACK,
                                          port=self.port, www=self.www, accel_server=accel_server))
        return conf

    def start(self, timeout=15):
        """Check the config, start nginx in the foreground and wait for it."""
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise RuntimeError("nginx not found: apt-get install -y nginx-light (or nginx)")
        conf = self.write_config()
        argv = [binary, "-p", f"{self.prefix}/", "-c", str(conf), "-e", str(self.prefix / "error.log")]
        check = subprocess.run(argv + ["-t"], capture_output=True, text=True)
        if check.returncode:
            raise RuntimeError(f"nginx -t failed: {check.stderr.strip()}")
        self.proc = self.group.start("nginx", argv, self.prefix, dict(os.environ),
                                     self.prefix / "nginx.out")
        (self.files_dir / ".ready").write_text("ok")
        wait_http_ok(self.addr, "/files/.ready", time.monotonic() + timeout, self.proc.alive)


class ImagedataServer:
    """Our service under gunicorn with the repository's production gunicorn.conf.py."""

    def __init__(self, group, repo, bin_dir, workdir, workers=None, extra_env=None, name="imagedata"):
        self.group = group
        self.repo = Path(repo)
        self.bin_dir = Path(bin_dir)
        self.workdir = Path(workdir) / name
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
        try:
            wait_http_ok(self.addr, "/versions", time.monotonic() + timeout, self.proc.alive)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- gunicorn log ---\n{self.proc.log_tail()}") from exc

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
