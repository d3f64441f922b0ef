"""One real Keystone per session and one imagedata (IMAGEDATA_AUTH=keystone) found through its catalog.

Keystone: two projects (alpha, beta) with a member and a reader, an admin (the bootstrap admin),
and a ``service`` project holding imagedata's own service user and Nova's, both with the
``service`` role. imagedata runs one worker, so the token cache the tests observe is one cache.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import secrets

import pytest

from tests.e2e.server import Server
from tests.helpers import skip_or_fail
from tests.keystone.identity import Identity, User
from tests.keystone.keystone_server import (KEYSTONE_VERSION, REGION, Keystone, KeystoneSetupError,
                                            authtoken_section, ensure_venv)

# How long imagedata trusts a validated token without asking Keystone again (token_cache_time).
CACHE_SECONDS = 6
SIZE_CAP = 8 << 20


@dataclasses.dataclass
class Cloud:
    """The Keystone, the imagedata behind it, and who can log in."""

    keystone: Keystone
    identity: Identity
    server: Server
    users: dict[str, User]
    config_path: str

    def token(self, name: str) -> str:
        """A new project-scoped token for the user called ``name``."""
        return self.identity.token_for(self.users[name])


@pytest.fixture(scope="session")
def cloud(tmp_path_factory):
    """Keystone 30 (its own cached virtualenv, gunicorn, stopped by pid), its users, and imagedata.

    imagedata starts while Keystone is set up: it needs Keystone only to validate tokens.
    """
    try:
        venv = ensure_venv()
    except KeystoneSetupError as exc:
        skip_or_fail(f"the Keystone {KEYSTONE_VERSION} virtualenv cannot be built here: {exc}")
    keystone = Keystone(tmp_path_factory.mktemp("keystone"), venv)
    root = tmp_path_factory.mktemp("imagedata-keystone")
    config_path = str(root / "keystone-authtoken.conf")
    service_password = secrets.token_hex(12)
    with open(config_path, "w") as f:
        f.write(authtoken_section(keystone.auth_url, "imagedata", service_password, CACHE_SECONDS))
    server = Server(root / "srv", IMAGEDATA_AUTH="keystone", IMAGEDATA_KEYSTONE_CONFIG=config_path,
                    GUNICORN_CMD_ARGS="--workers 1", IMAGEDATA_IMAGE_SIZE_CAP=SIZE_CAP)
    identity = Identity(keystone.auth_url, keystone.admin_password)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            imagedata_started = pool.submit(server.start)
            try:
                keystone.setup().start()
                users = populate(identity, service_password)
                identity.register_image_service(server.url, REGION)
            finally:
                imagedata_started.result()
    except BaseException as exc:
        server.stop()
        keystone.stop()
        if isinstance(exc, KeystoneSetupError):
            pytest.fail(str(exc), pytrace=False)
        raise
    yield Cloud(keystone, identity, server, users, config_path)
    server.stop()
    keystone.stop()

def populate(identity: Identity, service_password: str) -> dict[str, User]:
    """The service project (imagedata's and Nova's users) and the alpha and beta projects."""
    for role in ("member", "reader", "service"):
        identity.role_id(role)  # looked up (or created) once, before the threads below
    wanted = [("imagedata", "service", "service", service_password), ("nova", "service", "service", None),
              ("alice", "alpha", "member", None), ("carol", "alpha", "reader", None),
              ("bob", "beta", "member", None), ("dave", "beta", "reader", None)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        projects = dict(zip(("service", "alpha", "beta"),
                            pool.map(identity.create_project, ("service", "alpha", "beta"))))
        made = pool.map(lambda w: identity.create_user(w[0], w[3] or secrets.token_hex(12), w[1], projects[w[1]],
                                                       [w[2]]), wanted)
        users = {user.name: user for user in made}
    users["admin"] = User("admin", identity.admin_password, "", "admin", "", ("admin",))
    return users
