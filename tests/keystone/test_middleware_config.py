"""imagedata.auth.keystone without a Keystone: configuration checks, defaults, the token cache."""
from __future__ import annotations

import re
import time

import pytest
import webob

from imagedata.app import create_app
from imagedata.auth.request import KEYSTONE_UNREACHABLE_KEY
from imagedata.config import ConfigError, load_settings
from imagedata.auth.keystone import BOUNDED_DEFAULTS, CACHE_KEY, TokenCache, wrap_auth_token
from testkit.ports import free_port

GOOD = """\
[keystone_authtoken]
auth_type = password
auth_url = http://127.0.0.1:{port}/v3
www_authenticate_uri = http://keystone.example:5000/v3
username = imagedata
password = secret
project_name = service
user_domain_name = Default
project_domain_name = Default
"""


def write(tmp_path, text: str, name="authtoken.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def downstream(environ, start_response):
    """The app behind the middleware: echoes what auth_token told it."""
    status = environ.get("HTTP_X_IDENTITY_STATUS", "-")
    unreachable = "unreachable" if environ.get(KEYSTONE_UNREACHABLE_KEY) else "reached"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{status} {unreachable}".encode()]


def test_keystone_mode_needs_its_config_file(tmp_path):
    with pytest.raises(ConfigError, match="IMAGEDATA_KEYSTONE_CONFIG"):
        load_settings({"IMAGEDATA_DATA_DIR": str(tmp_path), "IMAGEDATA_AUTH": "keystone"})


@pytest.mark.parametrize("text,needle", [
    (None, "cannot read"),
    ("not an ini file\n", "not an ini file"),
    ("[DEFAULT]\ndebug = true\n", "no [keystone_authtoken] section"),
    ("[keystone_authtoken]\nauth_type = password\n", "must set auth_url, www_authenticate_uri"),
    ("[keystone_authtoken]\nauth_type = password\nauth_url = http://k/v3\nwww_authenticate_uri =\n",
     "must set www_authenticate_uri"),
], ids=["missing", "garbage", "no-section", "no-urls", "empty-uri"])
def test_bad_config_files_are_refused_at_start(tmp_path, text, needle):
    path = str(tmp_path / "absent.conf") if text is None else write(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(needle)) as raised:
        wrap_auth_token(downstream, path)
    assert "IMAGEDATA_KEYSTONE_CONFIG" in str(raised.value)


def test_an_unknown_auth_type_is_refused_at_start(tmp_path):
    path = write(tmp_path, GOOD.format(port=1).replace("auth_type = password", "auth_type = nosuchplugin"))
    with pytest.raises(ConfigError, match="IMAGEDATA_KEYSTONE_CONFIG"):
        wrap_auth_token(downstream, path)


def test_bounded_defaults_unless_the_file_says_otherwise(tmp_path):
    middleware = wrap_auth_token(downstream, write(tmp_path, GOOD.format(port=1)))
    for name, value in BOUNDED_DEFAULTS.items():
        assert middleware._conf.get(name) == value
    assert middleware._conf.get("delay_auth_decision") is True
    assert middleware._conf.get("cache") == CACHE_KEY
    own = GOOD.format(port=1) + "http_connect_timeout = 7\nhttp_request_max_retries = 0\ndelay_auth_decision = false\n"
    middleware = wrap_auth_token(downstream, write(tmp_path, own, "own.conf"))
    assert (middleware._conf.get("http_connect_timeout"), middleware._conf.get("http_request_max_retries")) == (7, 0)
    assert middleware._conf.get("delay_auth_decision") is True  # imagedata always decides itself


def test_a_glance_api_conf_can_be_used_as_it_is(tmp_path):
    """Only [keystone_authtoken] is read; Glance's other sections and options are ignored."""
    text = ("[DEFAULT]\nbind_port = 9292\nworkers = 4\n\n[glance_store]\nenabled_backends = fast:file\n\n"
            "[paste_deploy]\nflavor = keystone\n\n" + GOOD.format(port=1) + "service_type = image\n")
    middleware = wrap_auth_token(downstream, write(tmp_path, text, "glance-api.conf"))
    assert middleware._conf.get("service_type") == "image"
    assert middleware.www_authenticate_uri == "http://keystone.example:5000/v3"


def test_memcached_replaces_the_worker_cache(tmp_path):
    text = GOOD.format(port=1) + "memcached_servers = 127.0.0.1:11211\n"
    middleware = wrap_auth_token(downstream, write(tmp_path, text))
    assert middleware._worker_cache is None
    assert middleware._conf.get("cache") is None


def test_unreachable_keystone_marks_the_request_instead_of_a_401(tmp_path):
    """Nothing listens on the port: connection refused, the request is marked for a 503."""
    text = GOOD.format(port=free_port()) + "http_request_max_retries = 0\n"
    middleware = wrap_auth_token(downstream, write(tmp_path, text))
    started = time.monotonic()
    response = webob.Request.blank("/v2/images", headers={"X-Auth-Token": "some-token"}).get_response(middleware)
    assert response.text == "- unreachable"  # no identity at all: imagedata.auth answers 503
    assert time.monotonic() - started < 5
    # Without a token there is nothing to ask Keystone about: no mark, just unauthenticated.
    response = webob.Request.blank("/v2/images").get_response(middleware)
    assert response.text == "Invalid reached"


def test_identity_headers_from_the_client_are_removed(tmp_path):
    middleware = wrap_auth_token(downstream, write(tmp_path, GOOD.format(port=1)))
    request = webob.Request.blank("/v2/images", headers={"X-Identity-Status": "Confirmed", "X-Roles": "admin"})
    assert request.get_response(middleware).text == "Invalid reached"


def test_the_app_builds_in_keystone_mode_without_contacting_keystone(tmp_path):
    env = {"IMAGEDATA_DATA_DIR": str(tmp_path / "data"), "IMAGEDATA_AUTH": "keystone",
           "IMAGEDATA_KEYSTONE_CONFIG": write(tmp_path, GOOD.format(port=1)), "IMAGEDATA_LOG_LEVEL": "WARNING"}
    client = create_app(env).test_client()
    assert client.get("/versions").status_code == 200
    response = client.get("/v2/images")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Keystone uri="http://keystone.example:5000/v3"'


def test_token_cache_expires_and_stays_bounded(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("imagedata.auth.keystone.monotonic", lambda: now[0])
    cache = TokenCache(max_entries=2)
    cache.set("a", "A", time=5)
    cache.set("forever", "F")
    assert cache.get("a") == "A"
    now[0] += 5
    assert cache.get("a") is None and cache.get("forever") == "F"
    cache.set("b", "B", time=5)
    cache.set("c", "C", time=5)  # evicts the least recently used
    assert cache.get("forever") is None and cache.get("b") == "B" and cache.get("c") == "C"
