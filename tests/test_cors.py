"""CORS: preflights and actual answers for listed origins only; nothing without the setting."""
from __future__ import annotations

import pytest

from imagedata.config import ConfigError, parse_origins
from tests.helpers import with_env

DB_BACKENDS = ("sqlite",)
ALLOWED = "https://horizon.example"
CORS = with_env(IMAGEDATA_CORS_ALLOWED_ORIGINS=f"{ALLOWED}, http://127.0.0.1:8080")


def preflight(client, origin, method="PUT", headers="x-auth-token,content-type"):
    return client.options("/v2/images/0b9f8d4e-6d8c-4c34-8f1e-6c43ab2e5a11/file", headers={
        "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers})


@CORS
def test_a_listed_origin_gets_its_preflight_answered(client):
    response = preflight(client, ALLOWED)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} <= methods
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"x-auth-token", "content-type", "x-openstack-request-id", "content-range", "content-md5",
            "x-image-meta-store", "x-openstack-image-size"} <= allowed
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Origin" in response.headers["Vary"]


@CORS
@pytest.mark.parametrize("origin", ["https://evil.example", "http://horizon.example", "https://horizon.example:444",
                                    "null", ""])
def test_an_unlisted_origin_gets_nothing(client, origin, auth):
    response = preflight(client, origin)
    assert not any(k.lower().startswith("access-control-") for k in response.headers.keys())
    response = client.get("/v2/images", headers={**auth, "Origin": origin})
    assert response.status_code == 200
    assert not any(k.lower().startswith("access-control-") for k in response.headers.keys())


@CORS
def test_actual_answers_expose_what_clients_read(client, auth):
    headers = {**auth, "Origin": ALLOWED}
    created = client.post("/v2/images", json={"name": "x", "disk_format": "raw", "container_format": "bare"},
                          headers=headers)
    assert created.status_code == 201
    assert created.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = {h.strip().lower() for h in created.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"location", "openstack-image-import-methods", "openstack-image-store-ids", "upload-offset",
            "upload-length", "content-md5", "etag", "x-openstack-request-id", "content-range"} <= exposed
    # Errors too, so the page can show the message: no token, and a refused upload.
    assert client.get("/v2/images", headers={"Origin": ALLOWED}).headers["Access-Control-Allow-Origin"] == ALLOWED
    refused = client.put(f"/v2/images/{created.get_json()['id']}/file", data=b"x", headers={**headers, "Content-Type": "text/plain"})
    assert refused.status_code == 415 and refused.headers["Access-Control-Allow-Origin"] == ALLOWED


@CORS
def test_a_method_we_never_serve_is_refused_in_preflight(client):
    response = preflight(client, ALLOWED, method="TRACE")
    assert response.status_code == 405 and "Access-Control-Allow-Origin" not in response.headers


@CORS
def test_the_console_is_same_origin_only(client):
    response = client.get("/console/api/config", headers={"Origin": ALLOWED})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_without_the_setting_there_is_no_cors(client, auth):
    response = preflight(client, ALLOWED)
    assert not any(k.lower().startswith("access-control-") for k in response.headers.keys())
    assert response.status_code == 405
    response = client.get("/v2/images", headers={**auth, "Origin": ALLOWED})
    assert not any(k.lower().startswith("access-control-") for k in response.headers.keys())


@with_env(IMAGEDATA_CORS_ALLOWED_ORIGINS="*")
def test_a_star_allows_any_origin_but_never_credentials(client):
    response = preflight(client, "https://anywhere.example")
    assert response.headers["Access-Control-Allow-Origin"] == "https://anywhere.example"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("value, expected", [
    ("", ()), ("https://a.example", ("https://a.example",)), ("HTTPS://A.example/ , http://b:81", ("https://a.example", "http://b:81")),
    ("*", ("*",)), ("a.example", ConfigError), ("https://a.example/path", ConfigError), ("ftp://a", ConfigError),
    ("https://a.example?x=1", ConfigError),
])
def test_the_setting_is_checked(value, expected):
    if expected is ConfigError:
        with pytest.raises(ConfigError, match="IMAGEDATA_CORS_ALLOWED_ORIGINS"):
            parse_origins(value)
    else:
        assert parse_origins(value) == expected
