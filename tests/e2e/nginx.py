"""A private nginx running the production site file deploy/nginx/imagedata.conf.

Only the listen address, the upstream port, the store folder and the cache folder of the site
are replaced (each must appear exactly once, so a change to the site's shape fails loudly here).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess


from tests.e2e.server import REPO, free_port
from tests.processes import stop_process, wait_until_answering

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = os.path.join(REPO, "deploy", "nginx", "imagedata.conf")

MAIN_CONF = """\
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    sendfile on;
    include {site};
}}
"""


def render_site(upstream_port, listen_port: int, stores_dir: str, text: str | None = None,
                cache_dir: str | None = None) -> str:
    """The deploy site with this test's ports (one upstream, or a list of hosts), store folder
    and cache folder (by default one beside the stores that nobody fills)."""
    text = open(SITE).read() if text is None else text
    ports = upstream_port if isinstance(upstream_port, (list, tuple)) else [upstream_port]
    replacements = {
        "server 127.0.0.1:9292;": "\n    ".join(f"server 127.0.0.1:{port};" for port in ports),
        "listen 80;": f"listen 127.0.0.1:{listen_port};",
        "alias /srv/imagedata/stores/;": f"alias {stores_dir.rstrip('/')}/;",
        "alias /var/cache/imagedata/;": f"alias {(cache_dir or stores_dir.rstrip('/') + '-cache').rstrip('/')}/;",
    }
    for old, new in replacements.items():
        if text.count(old) != 1:
            raise AssertionError(f"{SITE}: expected {old!r} exactly once")
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx in the foreground in a private prefix, proxying to one imagedata server."""

    def __init__(self, prefix, upstream_port, stores_dir: str, cache_dir: str | None = None):
        self.prefix = str(prefix)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.upstream_port = upstream_port
        self.stores_dir = stores_dir
        self.cache_dir = cache_dir
        self.proc = None

    def start(self, timeout: float = 10.0) -> "Nginx":
        """Write the configuration, check it (nginx -t), start nginx and wait for it to proxy."""
        os.makedirs(self.prefix, exist_ok=True)
        site = os.path.join(self.prefix, "imagedata.conf")
        with open(site, "w") as f:
            f.write(render_site(self.upstream_port, self.port, self.stores_dir, cache_dir=self.cache_dir))
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(MAIN_CONF.format(prefix=self.prefix, user=user, site=site))
        argv = [NGINX, "-p", f"{self.prefix}/", "-c", conf, "-e", os.path.join(self.prefix, "error.log")]
        check = subprocess.run(argv + ["-t"], capture_output=True, text=True)
        if check.returncode:
            raise RuntimeError(f"nginx -t failed: {check.stderr}")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_answering(self.proc, f"{self.url}/versions", timeout, "nginx", self.error_log)
        return self

    def error_log(self) -> str:
        """The tail of nginx's error log."""
        try:
            with open(os.path.join(self.prefix, "error.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Graceful stop (SIGQUIT) of the nginx we started, by pid; SIGKILL if it hangs."""
        stop_process(self.proc, signal.SIGQUIT, timeout=10)
