"""A real Keystone for the tests: its own cached virtualenv, SQLite, gunicorn on a loopback port.

The virtualenv (keystone and gunicorn, pinned by constraints.txt) is built once and kept under
``~/.cache/imagedata/keystone-venv-<version>-<hash of constraints.txt>`` (or
``$IMAGEDATA_KEYSTONE_VENV``), so Keystone's pins never touch the test virtualenv. Every session
gets a fresh state folder: keystone.conf, ``keystone-manage db_sync``, ``fernet_setup``,
``credential_setup`` and ``bootstrap`` (admin password, region, identity endpoint), then
gunicorn. The server is stopped by the pid of the gunicorn master the test started.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess

from testkit.ports import free_port
from testkit.processes import child_pids, log_tail, pid_running, stop_process, wait_until_answering
from tests import toolvenv
from tests.toolvenv import ToolSetupError

HERE = os.path.dirname(os.path.abspath(__file__))
KEYSTONE_VERSION = "30.0.0"
REQUIREMENTS = (f"keystone=={KEYSTONE_VERSION}", "gunicorn==27.0.1")
CONSTRAINTS = os.path.join(HERE, "constraints.txt")
REGION = "RegionOne"


class KeystoneSetupError(ToolSetupError):
    """The Keystone virtualenv or state could not be built here."""


def venv_path() -> str:
    """Where the Keystone virtualenv lives (keyed by version and constraints)."""
    return toolvenv.venv_path("keystone", KEYSTONE_VERSION, REQUIREMENTS, CONSTRAINTS, "IMAGEDATA_KEYSTONE_VENV")


def ensure_venv() -> str:
    """Build the Keystone virtualenv unless a complete one is cached; returns its path."""
    return toolvenv.ensure_venv(venv_path(), REQUIREMENTS, CONSTRAINTS, "import keystone.cmd.cli, gunicorn",
                                KeystoneSetupError)


KEYSTONE_CONF = """\
[DEFAULT]
use_stderr = true
debug = false

[database]
connection = sqlite:///{root}/keystone.db

[fernet_tokens]
key_repository = {root}/fernet-keys

[credential]
key_repository = {root}/credential-keys

[identity]
# bcrypt's cheapest cost: every password login checks one hash.
password_hash_rounds = 4

[token]
expiration = 7200
"""


AUTHTOKEN_CONF = """\
[keystone_authtoken]
auth_type = password
auth_url = {auth_url}
www_authenticate_uri = {auth_url}
username = {username}
password = {password}
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = {region}
token_cache_time = {cache_seconds}
"""


def authtoken_section(auth_url: str, username: str, password: str, cache_seconds: int = 300) -> str:
    """The ``[keystone_authtoken]`` section of a service whose user ``username`` (``service`` role in
    the ``service`` project) validates tokens at ``auth_url``."""
    return AUTHTOKEN_CONF.format(auth_url=auth_url, username=username, password=password, region=REGION,
                                 cache_seconds=cache_seconds)


class Keystone:
    """One Keystone served by gunicorn from the cached virtualenv; stopped by pid."""

    def __init__(self, root, venv: str):
        self.root = str(root)
        self.venv = venv
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth_url = f"{self.url}/v3"
        self.admin_password = secrets.token_hex(16)
        self.config = os.path.join(self.root, "keystone.conf")
        self.log_path = os.path.join(self.root, "keystone.log")
        self.proc = None

    def setup(self) -> "Keystone":
        """Write keystone.conf and run keystone-manage's db_sync, key setup and bootstrap."""
        for folder in ("fernet-keys", "credential-keys"):
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        with open(self.config, "w") as f:
            f.write(KEYSTONE_CONF.format(root=self.root))
        owner = ["--keystone-user", _user_name(), "--keystone-group", _group_name()]
        steps = ["db_sync", " ".join(["fernet_setup", *owner]), " ".join(["credential_setup", *owner]),
                 " ".join(["bootstrap", f"--bootstrap-password={self.admin_password}",
                           "--bootstrap-region-id", REGION, "--bootstrap-public-url", self.auth_url,
                           "--bootstrap-internal-url", self.auth_url])]
        done = subprocess.run([self.python, os.path.join(HERE, "manage.py"), self.config, *steps],
                              capture_output=True, text=True, timeout=300, cwd=self.root)
        if done.returncode != 0:
            raise KeystoneSetupError(f"keystone-manage failed (exit {done.returncode}):\n"
                                     f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return self

    @property
    def python(self) -> str:
        return os.path.join(self.venv, "bin", "python")

    def start(self, timeout: float = 60.0) -> "Keystone":
        """Start gunicorn (one worker, four threads) and wait until GET /v3 answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "IMAGEDATA_"))}
        env["OS_KEYSTONE_CONFIG_FILES"] = self.config
        argv = [self.python, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
                "--worker-class", "gthread", "--threads", "4", "--timeout", "120", "--graceful-timeout", "5",
                "--no-control-socket", "--chdir", HERE, "keystone_app:application"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.root)
        wait_until_answering(self.proc, self.auth_url, timeout, "Keystone's gunicorn", self.log,
                             KeystoneSetupError, interval=0.2, request_timeout=2)
        return self

    def stop(self) -> None:
        """SIGTERM the gunicorn master we started; SIGKILL it if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.resume()
        stop_process(self.proc)

    def pause(self) -> None:
        """SIGSTOP the master and its worker: connections are accepted but never answered."""
        for pid in child_pids(self.proc.pid) + [self.proc.pid]:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT what ``pause`` stopped."""
        for pid in [self.proc.pid] + child_pids(self.proc.pid):
            if pid_running(pid):
                os.kill(pid, signal.SIGCONT)

    def log(self) -> str:
        """The end of Keystone's output."""
        return log_tail(self.log_path, 4000)


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _group_name() -> str:
    import grp

    return grp.getgrgid(os.getgid()).gr_name
