"""Settings: defaults, environment, validation with messages that name the variable."""
import pytest

from imagedata.config import ConfigError, load_settings, parse_stores


def test_defaults(tmp_path):
    settings = load_settings({"IMAGEDATA_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path}/imagedata.db"
    assert [(s.store_id, s.path) for s in settings.stores] == [("local", f"{tmp_path}/images")]
    assert settings.default_store == "local"
    assert settings.image_size_cap == 1 << 40
    assert settings.auth == "token"


def test_stores_and_default(tmp_path):
    settings = load_settings({"IMAGEDATA_DATA_DIR": str(tmp_path),
                              "IMAGEDATA_STORES": "fast=file:///srv/fast, slow=file:///srv/slow%20disk",
                              "IMAGEDATA_DEFAULT_STORE": "slow"})
    assert [(s.store_id, s.path) for s in settings.stores] == [("fast", "/srv/fast"), ("slow", "/srv/slow disk")]
    assert settings.default_store == "slow"


@pytest.mark.parametrize("value", [
    "", "local", "local=/relative", "local=file://relative/x", "local=http://x/y", "os_glance_staging=file:///x",
    "a=file:///x,a=file:///y", "../x=file:///x", "local=file://otherhost/x",
])
def test_bad_stores_are_refused(value):
    with pytest.raises(ConfigError):
        parse_stores(value)


@pytest.mark.parametrize("env,name", [
    ({"IMAGEDATA_IMAGE_SIZE_CAP": "lots"}, "IMAGEDATA_IMAGE_SIZE_CAP"),
    ({"IMAGEDATA_IMAGE_SIZE_CAP": "0"}, "IMAGEDATA_IMAGE_SIZE_CAP"),
    ({"IMAGEDATA_AUTH": "kerberos"}, "IMAGEDATA_AUTH"),
    ({"IMAGEDATA_DEFAULT_STORE": "nope"}, "IMAGEDATA_DEFAULT_STORE"),
    ({"IMAGEDATA_DATA_ADMIN_ONLY": "perhaps"}, "IMAGEDATA_DATA_ADMIN_ONLY"),
    ({"IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS": "80,http"}, "IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS"),
    ({"IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS": "0"}, "IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS"),
    ({"IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS": "65536"}, "IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS"),
    ({"IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS": "mirror:99999"}, "IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS"),
    ({"IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS": "http://mirror/"}, "IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS"),
    ({"IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS": "10.0.0.0/33"}, "IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS"),
    ({"IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT": "0"}, "IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT"),
])
def test_bad_values_name_the_variable(tmp_path, env, name):
    with pytest.raises(ConfigError, match=name):
        load_settings({"IMAGEDATA_DATA_DIR": str(tmp_path), **env})


def test_noauth_refuses_a_public_bind(tmp_path):
    from imagedata.app import create_app

    env = {"IMAGEDATA_DATA_DIR": str(tmp_path), "IMAGEDATA_AUTH": "noauth", "IMAGEDATA_BIND": "0.0.0.0:9292",
           "IMAGEDATA_LOG_LEVEL": "WARNING"}
    with pytest.raises(ConfigError, match="loopback"):
        create_app(env)


def test_web_download_settings(tmp_path):
    from ipaddress import ip_network

    from imagedata.config import AllowedHost

    defaults = load_settings({"IMAGEDATA_DATA_DIR": str(tmp_path)})
    assert defaults.web_download_allowed_ports == (80, 443)
    assert defaults.web_download_allowed_hosts == ()
    assert defaults.web_download_idle_timeout == 60
    settings = load_settings({
        "IMAGEDATA_DATA_DIR": str(tmp_path), "IMAGEDATA_WEB_DOWNLOAD_ALLOWED_PORTS": "443, 8443",
        "IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS": "Mirror.Example.org., mirror2:8080, 10.0.0.0/8, 192.0.2.7:8000, "
                                                "[2001:db8::7]:80, 2001:db8::/32",
        "IMAGEDATA_WEB_DOWNLOAD_IDLE_TIMEOUT": "30"})
    assert settings.web_download_allowed_ports == (443, 8443)
    assert settings.web_download_allowed_hosts == (
        AllowedHost(name="mirror.example.org"), AllowedHost(name="mirror2", port=8080),
        AllowedHost(network=ip_network("10.0.0.0/8")), AllowedHost(network=ip_network("192.0.2.7/32"), port=8000),
        AllowedHost(network=ip_network("2001:db8::7/128"), port=80), AllowedHost(network=ip_network("2001:db8::/32")))
    assert settings.web_download_idle_timeout == 30
    assert load_settings({"IMAGEDATA_DATA_DIR": str(tmp_path)},
                         web_download_allowed_ports=(8080,)).web_download_allowed_ports == (8080,)
