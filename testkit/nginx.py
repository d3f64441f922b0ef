"""A private nginx on loopback, and the production site file with a run's ports and folders.

``deploy_site`` renders deploy/nginx/imagedata.conf, replacing only the upstream, the listen
address, the store folder and the X-Accel location; each must appear exactly once, so a change
to the site's shape fails loudly here. ``Nginx`` writes a main configuration around an
``http {}`` body of its caller's, checks it (``nginx -t``), runs nginx in the foreground in its
own prefix and stops it by pid.
"""
from __future__ import annotations

import getpass
import grp
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from testkit.ports import LOOPBACK, free_port
from testkit.processes import log_tail, stop_process, wait_until_answering

REPO = Path(__file__).resolve().parent.parent
DEPLOY_SITE = REPO / "deploy" / "nginx" / "imagedata.conf"

MAIN_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    sendfile on;
{http}
}}
"""


def nginx_binary() -> str | None:
    """The nginx binary (on PATH or Debian's /usr/sbin/nginx), or None."""
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if os.access(found, os.X_OK) else None


def user_line() -> str:
    """When we are root, run the workers as ourselves (nginx would pick nobody otherwise)."""
    if os.geteuid() != 0:
        return ""
    return f"user {getpass.getuser()} {grp.getgrgid(pwd.getpwuid(os.getuid()).pw_gid).gr_name};"


def deploy_site(upstreams: list[str], listen: str, stores_dir: str, accel_prefix: str = "/_accel/") -> str:
    """The deploy site proxying to ``upstreams`` (host:port each), listening on ``listen``, with
    its X-Accel location at ``accel_prefix`` serving the stores under ``stores_dir``."""
    text = DEPLOY_SITE.read_text()
    prefix = "/" + accel_prefix.strip("/") + "/"
    for old, new in (("server 127.0.0.1:9292;", "\n    ".join(f"server {up};" for up in upstreams)),
                     ("listen 80;", f"listen {listen};"),
                     ("alias /srv/imagedata/stores/;", f"alias {str(stores_dir).rstrip('/')}/;"),
                     ("location /_accel/ {", f"location {prefix} {{")):
        if text.count(old) != 1:
            raise RuntimeError(f"{DEPLOY_SITE}: expected {old!r} exactly once")
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx in the foreground in a private prefix, on a free loopback port; stopped by pid.

    A subclass says what it serves (``http_config``, the body of ``http {}``) and which path
    answers 200 once it is up (``ready_path``).
    """

    ready_path = "/"

    def __init__(self, prefix, workers: int = 1, connections: int = 512):
        self.prefix = Path(prefix)
        self.workers, self.connections = workers, connections
        self.port = free_port()
        self.addr = (LOOPBACK, self.port)
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.proc = None

    def http_config(self) -> str:
        """The body of the ``http {}`` block: the servers this nginx runs."""
        raise NotImplementedError

    def write_config(self) -> Path:
        """Write nginx.conf into the prefix and return its path."""
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(MAIN_CONF.format(prefix=self.prefix, user=user_line(), workers=self.workers,
                                         connections=self.connections, http=self.http_config()))
        return conf

    def start(self, timeout: float = 15.0) -> "Nginx":
        """Write and check the configuration, start nginx and wait until ``ready_path`` answers 200."""
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx not found: apt-get install -y nginx-light (or nginx)")
        conf = self.write_config()
        argv = [binary, "-p", f"{self.prefix}/", "-c", str(conf), "-e", str(self.prefix / "error.log")]
        check = subprocess.run(argv + ["-t"], capture_output=True, text=True)
        if check.returncode:
            raise RuntimeError(f"nginx -t failed: {check.stderr.strip()}")
        with open(self.prefix / "nginx.out", "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=self.prefix, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_until_answering(self.proc, self.url + self.ready_path, timeout, "nginx", self.error_log)
        return self

    def error_log(self) -> str:
        """The tail of nginx's error log."""
        return log_tail(self.prefix / "error.log")

    def stop(self) -> None:
        """Graceful stop (SIGQUIT) of the nginx we started, by pid; SIGKILL if it hangs."""
        stop_process(self.proc, signal.SIGQUIT, timeout=10)


class SiteProxy(Nginx):
    """nginx running the production site file in front of imagedata servers (a port each)."""

    ready_path = "/versions"

    def __init__(self, prefix, upstream_ports, stores_dir: str):
        super().__init__(prefix)
        ports = upstream_ports if isinstance(upstream_ports, (list, tuple)) else [upstream_ports]
        self.upstreams = [f"{LOOPBACK}:{port}" for port in ports]
        self.stores_dir = str(stores_dir)

    def http_config(self) -> str:
        return deploy_site(self.upstreams, f"{LOOPBACK}:{self.port}", self.stores_dir)
