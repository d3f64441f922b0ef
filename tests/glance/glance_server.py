"""The real OpenStack Glance for the tests: its own cached virtualenv, SQLite, file stores, gunicorn.

The virtualenv (glance and gunicorn, pinned by constraints.txt) is built once and kept under
``~/.cache/imagedata/glance-venv-<version>-<hash>`` (or ``$IMAGEDATA_GLANCE_VENV``): measured
at 52 s with pip's cache warm and 220 s without it (on a busy 2-core host; nothing compiles:
gunicorn instead of uWSGI, which serves chunked uploads and glanceclient as well), none after.
So is an empty, migrated Glance database (``glance-manage db_sync`` takes about 5 s), which
every server then copies. A server starts in 3 to 6 s.

Identity without Keystone: each request names its caller in ``X-Auth-Token:
<user>:<project>:<role>[,<role>...]`` (``token()`` builds one; glance_auth.py reads it) and
Glance's own default policies decide. Or behind a real Keystone: given a ``[keystone_authtoken]``
section, Glance runs its own Keystone pipeline (keystonemiddleware, then its context filter).
Images live in ``<root>/images-<store>/<image id>`` (``data_path``), so a test can alter stored
bytes behind Glance's back. The file stores (``stores``: fast and slow unless given; the first is
the default) and the interoperable import methods offered (``import_methods``) are chosen per
server; staged data goes to Glance's staging store ``os_glance_staging_store`` in
``<root>/staging``. Stopped by the pid of the gunicorn master the test started.

Usable by any test module: ``Glance(tmp_folder).start()`` ... ``stop()``.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from testkit.ports import free_port
from testkit.processes import log_tail, stop_process, wait_until_answering
from tests import toolvenv
from tests.toolvenv import ToolSetupError

HERE = os.path.dirname(os.path.abspath(__file__))
GLANCE_VERSION = "33.0.0"
REQUIREMENTS = (f"glance=={GLANCE_VERSION}", "gunicorn==27.0.1")
CONSTRAINTS = os.path.join(HERE, "constraints.txt")
STORES = ("fast", "slow")  # Glance's enabled_backends (file stores) by default; the first is the default store
IMPORT_METHODS = ("glance-direct", "web-download", "copy-image")  # enabled_import_methods by default


class GlanceSetupError(ToolSetupError):
    """The Glance virtualenv or state could not be built here."""


def venv_path() -> str:
    """Where the Glance virtualenv lives (keyed by version and constraints)."""
    return toolvenv.venv_path("glance", GLANCE_VERSION, REQUIREMENTS, CONSTRAINTS, "IMAGEDATA_GLANCE_VENV")


def ensure_venv() -> str:
    """Build the Glance virtualenv unless a complete one is cached; returns its path."""
    return toolvenv.ensure_venv(venv_path(), REQUIREMENTS, CONSTRAINTS, "import glance.api.v2.router, gunicorn",
                                GlanceSetupError)


def token(user: str, project: str, roles: str = "member") -> str:
    """The test token of ``user`` with ``roles`` (comma-separated) on ``project``."""
    return f"{user}:{project}:{roles}"


GLANCE_CONF = """\
[DEFAULT]
debug = false
log_file = {root}/glance-api.log
use_stderr = false
image_size_cap = {size_cap}
user_storage_quota = {quota}
enabled_backends = {backends}
show_image_direct_url = false
show_multiple_locations = false
public_endpoint = {url}
enabled_import_methods = [{import_methods}]

[glance_store]
default_backend = {default}
{store_sections}
[os_glance_staging_store]
filesystem_store_datadir = {root}/staging/

[os_glance_tasks_store]
filesystem_store_datadir = {root}/tasks/

[database]
connection = sqlite:///{database}

[paste_deploy]
flavor = {flavor}
config_file = {root}/etc/glance-api-paste.ini

[oslo_policy]
# An empty file: Glance's own default rules.
policy_file = {root}/etc/policy.yaml
enforce_new_defaults = true

[wsgi]
task_pool_threads = 4

{authtoken}"""

PASTE_INI = """\
[composite:glance-api-testtoken]
paste.composite_factory = glance.api:root_app_factory
/: api

[composite:glance-api-keystone]
paste.composite_factory = glance.api:root_app_factory
/: api

[composite:api]
paste.composite_factory = glance.api:pipeline_factory
testtoken = versionnegotiation testtoken rootapp
keystone = versionnegotiation authtoken context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:testtoken]
paste.filter_factory = glance_auth:TestTokenContext.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory
"""


class Glance:
    """One Glance API served by gunicorn from the cached virtualenv; stopped by pid."""

    def __init__(self, root, venv: str | None = None, size_cap: int = 1 << 40, quota: str = "0",
                 workers: int = 1, threads: int = 8, keystone_authtoken: str | None = None,
                 stores: tuple[str, ...] = STORES, import_methods: tuple[str, ...] = IMPORT_METHODS):
        self.root = str(root)
        self.stores, self.import_methods = stores, import_methods
        self.authtoken = keystone_authtoken  # a [keystone_authtoken] section: Glance's Keystone pipeline
        self.venv = venv or ensure_venv()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.size_cap, self.quota = size_cap, quota
        self.workers, self.threads = workers, threads
        self.database = os.path.join(self.root, "glance.sqlite")
        self.log_path = os.path.join(self.root, "gunicorn.log")
        self.proc = None

    def data_path(self, image_id: str, store: str | None = None) -> str:
        """The file Glance keeps an image's data in (file store ``store``, by default the default store)."""
        return os.path.join(self.root, f"images-{store or self.stores[0]}", image_id)

    def setup(self) -> "Glance":
        """Write the configuration and give the server an empty, migrated database."""
        for folder in ("etc", "staging", "tasks", *(f"images-{s}" for s in self.stores)):
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        sections = "".join(f"\n[{s}]\nfilesystem_store_datadir = {self.root}/images-{s}/\n" for s in self.stores)
        with open(os.path.join(self.root, "etc", "glance-api.conf"), "w") as f:
            f.write(GLANCE_CONF.format(root=self.root, url=self.url, size_cap=self.size_cap, quota=self.quota,
                                       backends=", ".join(f"{s}:file" for s in self.stores), default=self.stores[0],
                                       import_methods=",".join(self.import_methods),
                                       store_sections=sections, database=self.database,
                                       flavor="keystone" if self.authtoken else "testtoken",
                                       authtoken=self.authtoken or ""))
        with open(os.path.join(self.root, "etc", "glance-api-paste.ini"), "w") as f:
            f.write(PASTE_INI)
        with open(os.path.join(self.root, "etc", "policy.yaml"), "w") as f:
            f.write("# Glance's default rules\n")
        shutil.copyfile(self._empty_database(), self.database)
        return self

    def _empty_database(self) -> str:
        """A database fresh from ``glance-manage db_sync``, made once per virtualenv."""
        template = os.path.join(self.venv, "glance-empty.sqlite")
        if not os.path.exists(template):
            building = os.path.join(self.root, "db-sync.sqlite")
            config = os.path.join(self.root, "etc", "db-sync.conf")
            with open(config, "w") as f:
                f.write(f"[database]\nconnection = sqlite:///{building}\n")
            toolvenv.run_tool([os.path.join(self.venv, "bin", "glance-manage"), "--config-file", config, "db_sync"],
                              "run glance-manage db_sync", GlanceSetupError, timeout=300, cwd=self.root)
            shutil.copyfile(building, f"{template}.{os.getpid()}")
            os.replace(f"{template}.{os.getpid()}", template)
        return template

    def load_metadefs(self, folder: str) -> "Glance":
        """Load the metadata definition files of ``folder`` into the database (``glance-manage db
        load_metadefs``), as a deployment does."""
        toolvenv.run_tool([os.path.join(self.venv, "bin", "glance-manage"), "--config-file",
                           os.path.join(self.root, "etc", "glance-api.conf"), "db", "load_metadefs", "--path", folder],
                          "run glance-manage db load_metadefs", GlanceSetupError, timeout=300, cwd=self.root)
        return self

    def start(self, timeout: float = 90.0) -> "Glance":
        """Start gunicorn and wait until GET /versions answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "IMAGEDATA_"))}
        env["OS_GLANCE_CONFIG_DIR"] = os.path.join(self.root, "etc")
        argv = [os.path.join(self.venv, "bin", "python"), "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers), "--worker-class", "gthread", "--threads", str(self.threads),
                "--timeout", "300", "--graceful-timeout", "5", "--no-control-socket", "--chdir", HERE,
                "glance_app:application"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.root)
        wait_until_answering(self.proc, f"{self.url}/versions", timeout, "Glance's gunicorn", self.log,
                             GlanceSetupError, interval=0.2, request_timeout=2)
        return self

    def stop(self) -> None:
        """SIGTERM the gunicorn master we started; SIGKILL it if it hangs."""
        stop_process(self.proc)

    def log(self) -> str:
        """The end of gunicorn's and Glance's own logs."""
        return log_tail(self.log_path) + log_tail(os.path.join(self.root, "glance-api.log"))
