"""Fixtures of the metadata-definition tests: callers of several projects and a small request helper."""
from __future__ import annotations

import json

import pytest

NS = "/v2/metadefs/namespaces"
JSON = {"Accept": "application/json"}
# (project, roles) of each caller: an admin, project A's member and reader, project B's member.
# Tables of bad input are checked before any database work: one engine is enough for them.
SQLITE_ONLY = pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
CALLERS = {"admin": ("ops", ("admin",)), "a-member": ("proj-a", ("member",)), "a-reader": ("proj-a", ("reader",)),
           "b-member": ("proj-b", ("member",)), "a-noroles": ("proj-a", ())}


@pytest.fixture
def who(make_token):
    """Headers of each caller in ``CALLERS``."""
    return {name: {"X-Auth-Token": make_token(project, roles), **JSON} for name, (project, roles) in CALLERS.items()}


class Api:
    """Requests as one caller or another: ``api("admin").post(path, body)``."""

    def __init__(self, client, who):
        self.client, self.who = client, who

    def __call__(self, caller: str = "admin") -> "Api":
        bound = Api(self.client, self.who)
        bound.caller = caller
        return bound

    caller = "admin"

    def request(self, method: str, path: str, body=None, headers=None):
        """One request; a dict or list body is sent as JSON."""
        hdrs = {**self.who[self.caller], **(headers or {})}
        data = None
        if body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        return self.client.open(path, method=method, data=data, headers=hdrs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture
def api(client, who) -> Api:
    """The request helper (admin unless called with another caller's name)."""
    return Api(client, who)


def created(response):
    """The JSON of a 201 response (fails with the body otherwise)."""
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def ok(response):
    """The JSON of a 200 response."""
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def message(response) -> str:
    """The message of a JSON error body."""
    return response.get_json()["message"]


def without_stamps(document):
    """``document`` without created_at/updated_at anywhere (they change with time)."""
    if isinstance(document, dict):
        return {k: without_stamps(v) for k, v in document.items() if k not in ("created_at", "updated_at")}
    if isinstance(document, list):
        return [without_stamps(v) for v in document]
    return document
