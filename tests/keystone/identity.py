"""Keystone v3 over plain HTTP for the tests' setup: projects, users, roles, catalog, tokens."""
from __future__ import annotations

import dataclasses
import datetime

import requests

TIMEOUT = 15


class IdentityError(RuntimeError):
    """Keystone refused a setup call."""


@dataclasses.dataclass(frozen=True)
class User:
    """A Keystone user the tests log in as, with the project its roles are on."""

    name: str
    password: str
    user_id: str
    project: str
    project_id: str
    roles: tuple[str, ...]


class Identity:
    """Keystone's API, as its bootstrap admin (a system-scoped token)."""

    def __init__(self, auth_url: str, admin_password: str):
        self.auth_url = auth_url.rstrip("/")
        self.admin_password = admin_password
        self._admin_token = None
        self._role_ids = None

    # ------------------------------------------------------------------ tokens

    def login(self, user: str, password: str, project: str | None = None, system: bool = False) -> str:
        """A new token for ``user`` (password method), scoped to ``project`` or the system."""
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"id": "default"}}}}}}
        if system:
            body["auth"]["scope"] = {"system": {"all": True}}
        elif project:
            body["auth"]["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
        response = requests.post(f"{self.auth_url}/auth/tokens", json=body, timeout=TIMEOUT)
        if response.status_code != 201:
            raise IdentityError(f"login {user}: {response.status_code} {response.text[:300]}")
        return response.headers["X-Subject-Token"]

    def token_for(self, user: User) -> str:
        """A new project-scoped token for a test user."""
        return self.login(user.name, user.password, user.project)

    def short_lived_token(self, user: User, seconds: int) -> tuple[str, float]:
        """A token of ``user`` that expires in about ``seconds`` (through an application credential,
        whose expiry caps its tokens'); returns it and its expiry as a Unix time."""
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
        response = requests.post(f"{self.auth_url}/users/{user.user_id}/application_credentials", timeout=TIMEOUT,
                                 headers={"X-Auth-Token": self.token_for(user)},
                                 json={"application_credential": {"name": f"expiring-{expires.timestamp()}",
                                                                  "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S")}})
        if response.status_code != 201:
            raise IdentityError(f"application credential: {response.status_code} {response.text[:300]}")
        credential = response.json()["application_credential"]
        body = {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
            "id": credential["id"], "secret": credential["secret"]}}}}
        response = requests.post(f"{self.auth_url}/auth/tokens", json=body, timeout=TIMEOUT)
        if response.status_code != 201:
            raise IdentityError(f"application credential login: {response.status_code} {response.text[:300]}")
        expires_at = response.json()["token"]["expires_at"].replace("Z", "+00:00")
        return response.headers["X-Subject-Token"], datetime.datetime.fromisoformat(expires_at).timestamp()

    def revoke(self, token: str) -> None:
        """Revoke ``token`` in Keystone (DELETE /v3/auth/tokens)."""
        response = requests.delete(f"{self.auth_url}/auth/tokens", timeout=TIMEOUT,
                                   headers={"X-Auth-Token": self.admin_token, "X-Subject-Token": token})
        if response.status_code != 204:
            raise IdentityError(f"revoke: {response.status_code} {response.text[:300]}")

    @property
    def admin_token(self) -> str:
        if self._admin_token is None:
            self._admin_token = self.login("admin", self.admin_password, system=True)
        return self._admin_token

    # ------------------------------------------------------------------ admin calls

    def call(self, method: str, path: str, **body):
        """One admin call; the decoded JSON body (or None)."""
        response = requests.request(method, f"{self.auth_url}{path}", json=body or None, timeout=TIMEOUT,
                                    headers={"X-Auth-Token": self.admin_token})
        if response.status_code >= 300:
            raise IdentityError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def role_id(self, name: str) -> str:
        """The id of role ``name``, created if missing (ids are looked up once)."""
        if self._role_ids is None:
            self._role_ids = {role["name"]: role["id"] for role in self.call("GET", "/roles")["roles"]}
        if name not in self._role_ids:
            self._role_ids[name] = self.call("POST", "/roles", role={"name": name})["role"]["id"]
        return self._role_ids[name]

    def create_project(self, name: str) -> str:
        """A new project in the default domain; returns its id."""
        return self.call("POST", "/projects", project={"name": name, "domain_id": "default"})["project"]["id"]

    def create_user(self, name: str, password: str, project: str, project_id: str, roles) -> User:
        """A new user with ``roles`` on the project."""
        user_id = self.call("POST", "/users", user={"name": name, "password": password,
                                                    "domain_id": "default"})["user"]["id"]
        for role in roles:
            self.call("PUT", f"/projects/{project_id}/users/{user_id}/roles/{self.role_id(role)}")
        return User(name, password, user_id, project, project_id, tuple(roles))

    def register_image_service(self, url: str, region: str, service_type: str = "image") -> str:
        """The catalog entry the clients find imagedata by: service ``image`` (or ``service_type``),
        public endpoint ``url``."""
        service_id = self.call("POST", "/services", service={"type": service_type, "name": "glance",
                                                             "description": "imagedata"})["service"]["id"]
        for interface in ("public", "internal"):
            self.call("POST", "/endpoints", endpoint={"service_id": service_id, "interface": interface,
                                                      "region_id": region, "url": url})
        return service_id
