"""IMAGEDATA_AUTH=noauth serves only on loopback or unix sockets, however gunicorn is told to bind.

Every case starts a real gunicorn master with the production gunicorn.conf.py (or a copy of
it). A refused master exits before any worker starts, so nothing ever answers on the public
address; an accepted one serves the noauth admin over the socket it was given. The request-peer
check behind the hooks is exercised through gunicorn's PROXY protocol support, which lets a
loopback connection present a remote peer address.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
import requests

from imagedata.server.noauth_guard import check_bind_setting, check_server, is_local_address, is_local_peer
from testkit.ports import free_port
from tests.e2e.server import BIN, REPO

pytestmark = pytest.mark.e2e
REFUSED = "IMAGEDATA_AUTH=noauth refuses to serve on"


def base_env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IMAGEDATA_", "GUNICORN_")) and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"IMAGEDATA_DATA_DIR": str(tmp_path / "data"), "IMAGEDATA_STORES": f"local=file://{tmp_path}/store",
                "IMAGEDATA_AUTH": "noauth", "IMAGEDATA_LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


def gunicorn(*args: str, config: str = "gunicorn.conf.py") -> list[str]:
    return [os.path.join(BIN, "gunicorn"), "-c", config, "--workers", "1", *args, "wsgi:app"]


def run_refused(tmp_path, *args, env=None, pass_fds=(), config="gunicorn.conf.py") -> str:
    """Run gunicorn that must refuse: it exits on its own, having booted no worker; returns its log."""
    started = time.monotonic()
    done = subprocess.run(gunicorn(*args, config=config), cwd=REPO, env=env or base_env(tmp_path),
                          capture_output=True, text=True, timeout=60, pass_fds=pass_fds)
    log = done.stdout + done.stderr
    assert done.returncode != 0, log
    assert REFUSED in log, log
    assert time.monotonic() - started < 30
    return log


def assert_master_refused(log: str) -> None:
    """The master itself stopped at when_ready: exit 1 and no worker was ever forked."""
    assert "Booting worker" not in log, log
    assert "Reason: IMAGEDATA_AUTH=noauth on a non-loopback address" in log, log


def assert_declared_bind_refused(log: str, address: str) -> None:
    """IMAGEDATA_BIND itself names a public address: the master refuses before it binds anything."""
    assert "Booting worker" not in log, log
    assert "IMAGEDATA_AUTH=noauth refuses to start" in log and address in log, log


class Running:
    """A gunicorn we started (stopped by pid)."""

    def __init__(self, tmp_path, *args, env=None, pass_fds=()):
        self.log_path = tmp_path / "gunicorn.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(gunicorn(*args), cwd=REPO, env=env or base_env(tmp_path), stdout=log,
                                         stderr=subprocess.STDOUT, pass_fds=pass_fds)

    def wait(self, probe, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                return probe()
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"gunicorn did not answer: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def running():
    started = []

    def start(*args, **kwargs):
        server = Running(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def http_get(address, path: str, family=socket.AF_INET, prefix: bytes = b"") -> tuple[int, bytes]:
    """One GET over a fresh connection to ``address`` (TCP or unix); (status, body)."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(prefix + f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def bound_socket(host: str) -> socket.socket:
    """A TCP socket bound to ``host`` on a free port, not listening (gunicorn calls listen itself)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.set_inheritable(True)
    return sock


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize("bind, public", [("0.0.0.0:{port}", "0.0.0.0:{port}"),
                                          ("127.0.0.1:{other},[::]:{port}", "[::]:{port}")])
def test_public_imagedata_bind_is_refused_before_binding(tmp_path, bind, public):
    port, other = free_port(), free_port()
    env = base_env(tmp_path, IMAGEDATA_BIND=bind.format(port=port, other=other))
    done = subprocess.run(gunicorn(), cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert_declared_bind_refused(done.stdout + done.stderr, public.format(port=port))


@pytest.mark.parametrize("how", ["-b 0.0.0.0", "-b [::]", "GUNICORN_CMD_ARGS", "-e IMAGEDATA_AUTH",
                                 "two -b, one public", "-b beats IMAGEDATA_BIND"])
def test_public_bind_is_refused_by_the_master(tmp_path, how):
    port, other = free_port(), free_port()
    env = base_env(tmp_path)
    args: list[str] = []
    expected = f"0.0.0.0:{port}"
    if how == "-b 0.0.0.0":
        args = ["-b", f"0.0.0.0:{port}"]
    elif how == "-b [::]":
        args, expected = ["-b", f"[::]:{port}"], f"[::]:{port}"
    elif how == "GUNICORN_CMD_ARGS":
        env["GUNICORN_CMD_ARGS"] = f"--bind 0.0.0.0:{port}"
    elif how == "-e IMAGEDATA_AUTH":  # gunicorn's own --env, set after the config file is read
        del env["IMAGEDATA_AUTH"]
        args = ["-e", "IMAGEDATA_AUTH=noauth", "-b", f"0.0.0.0:{port}"]
    elif how == "two -b, one public":
        args = ["-b", f"127.0.0.1:{other}", "-b", f"0.0.0.0:{port}"]
    else:  # the command line wins over the loopback the configuration file read from IMAGEDATA_BIND
        env["IMAGEDATA_BIND"] = f"127.0.0.1:{other}"
        args = ["-b", f"0.0.0.0:{port}"]
    log = run_refused(tmp_path, *args, env=env)
    assert_master_refused(log)
    assert f"{REFUSED} {expected}:" in log, log
    assert f"127.0.0.1:{other}" not in log.split(REFUSED)[1].split("\n")[0]  # only the public one is named


def test_public_bind_in_a_config_file_is_refused(tmp_path):
    """An operator's copy of gunicorn.conf.py with its own bind line."""
    config = tmp_path / "site.conf.py"
    shutil.copy(os.path.join(REPO, "gunicorn.conf.py"), config)
    port = free_port()
    with open(config, "a") as f:
        f.write(f'\nbind = ["0.0.0.0:{port}"]\n')
    assert_master_refused(run_refused(tmp_path, config=str(config)))


def test_inherited_public_socket_is_refused(tmp_path):
    """fd://N: a socket someone else bound (as systemd does) is judged by its real address."""
    with bound_socket("0.0.0.0") as sock:
        log = run_refused(tmp_path, "-b", f"fd://{sock.fileno()}", pass_fds=(sock.fileno(),))
        assert_master_refused(log)
        assert f"0.0.0.0:{sock.getsockname()[1]}" in log


def test_reuse_port_workers_refuse_their_own_public_sockets(tmp_path):
    """With reuse_port the master binds nothing; each worker checks the sockets it bound, before it serves."""
    log = run_refused(tmp_path, "--reuse-port", "-b", f"0.0.0.0:{free_port()}")
    assert "exited with code 3" in log and "Worker failed to boot" in log, log


# --------------------------------------------------------------------------- accepted


def assert_admin_answer(status_body) -> None:
    status, body = status_body
    assert status == 200, body  # stores/detail is admin-only: the noauth caller is admin
    assert b'"stores"' in body


@pytest.mark.parametrize("host, family", [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6),
                                          ("localhost", socket.AF_INET)])
def test_loopback_bind_serves(tmp_path, running, host, family):
    port = free_port()
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server = running(tmp_path, "-b", bind)
    target = ("127.0.0.1" if host == "localhost" else host, port)
    assert_admin_answer(server.wait(lambda: http_get(target, "/v2/info/stores/detail", family)))


def test_unix_socket_serves(tmp_path, running):
    path = str(tmp_path / "imagedata.sock")
    server = running(tmp_path, "-b", f"unix:{path}")
    assert_admin_answer(server.wait(lambda: http_get(path, "/v2/info/stores/detail", socket.AF_UNIX)))
    server.stop()
    assert not os.path.exists(path)


def test_inherited_loopback_socket_serves(tmp_path, running):
    with bound_socket("127.0.0.1") as sock:
        server = running(tmp_path, "-b", f"fd://{sock.fileno()}", pass_fds=(sock.fileno(),))
        assert_admin_answer(server.wait(lambda: http_get(sock.getsockname(), "/v2/info/stores/detail")))


def test_a_remote_peer_is_refused_even_on_loopback(tmp_path, running):
    """Behind the hooks: a request whose peer is another host gets 403 (here presented by PROXY protocol v1)."""
    port = free_port()
    server = running(tmp_path, "-b", f"127.0.0.1:{port}", "--proxy-protocol", "v1", "--proxy-allow-from", "127.0.0.1")
    local = b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 %d\r\n" % port
    assert_admin_answer(server.wait(lambda: http_get(("127.0.0.1", port), "/v2/info/stores/detail", prefix=local)))
    remote = b"PROXY TCP4 192.0.2.77 127.0.0.1 40000 %d\r\n" % port
    status, body = http_get(("127.0.0.1", port), "/v2/info/stores/detail", prefix=remote)
    assert status == 403, body
    assert b"serves only callers on this host" in body
    # A connection without a PROXY header is its own loopback peer.
    assert requests.get(f"http://127.0.0.1:{port}/v2/info/stores/detail", timeout=10).status_code == 200


# --------------------------------------------------------------------------- the guard's rules


@pytest.mark.parametrize("address, local", [
    (("127.0.0.1", 1), True), (("127.8.9.10", 1), True), (("::1", 1, 0, 0), True),
    (("::ffff:127.0.0.1", 1, 0, 0), True), ("/run/imagedata.sock", True), (b"\0abstract", True),
    (("0.0.0.0", 1), False), (("::", 1, 0, 0), False), (("192.0.2.2", 1), False), (("fe80::1%lo", 1, 0, 2), False),
    (("::ffff:0.0.0.0", 1, 0, 0), False), (("fd00::2", 1, 0, 0), False),
])
def test_local_addresses(address, local):
    assert is_local_address(address) is local


@pytest.mark.parametrize("peer, local", [("127.0.0.1", True), ("::1", True), ("", True), ("192.0.2.9", False),
                                         ("::ffff:192.0.2.9", False), (None, False), ("localhost", False)])
def test_local_peers(peer, local):
    assert is_local_peer(peer) is local


@pytest.mark.parametrize("bind, public", [
    ("127.0.0.1:9292", []), ("localhost:9292", []), ("[::1]:9292", []), ("unix:/run/x.sock", []),
    ("fd://3", []), ("tcp://127.0.0.1:1", []), ("::1", []),
    ("0.0.0.0:9292", ["0.0.0.0:9292"]), (":9292", [":9292"]), ("example.org:9292", ["example.org:9292"]),
    ("127.0.0.1:1, [::]:2", ["[::]:2"]),
])
def test_declared_binds(bind, public):
    assert check_bind_setting(bind) == public


def test_other_auth_modes_may_listen_anywhere():
    """The guard only ever refuses noauth (a real socket bound to every interface, never listening)."""
    halts = []

    class Master:
        LISTENERS = [bound_socket("0.0.0.0")]

        def halt(self, **kwargs):
            halts.append(kwargs)

    try:
        for mode in ("token", "trusted-headers"):
            check_server(Master(), mode)
    finally:
        Master.LISTENERS[0].close()
    assert halts == []
