"""`migrate-from-glance --os-cloud` / OS_*: Keystone credentials, the image endpoint from the real catalog.

The catalog of the Keystone tests names imagedata as the image service; the migration's source,
built from credentials alone, must find that endpoint and read the listing with a Keystone token
(imagedata validates it against the same Keystone).
"""
from __future__ import annotations

import pytest
import yaml

from imagedata.service.migrate.catalog import source_from_keystone
from imagedata.service.migrate.source import SourceError
from tests.keystone.keystone_server import REGION

pytestmark = pytest.mark.e2e


def _os_env(cloud, user) -> dict:
    return {"OS_AUTH_URL": cloud.keystone.auth_url, "OS_USERNAME": user.name, "OS_PASSWORD": user.password,
            "OS_PROJECT_NAME": user.project, "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
            "OS_REGION_NAME": REGION, "OS_IDENTITY_API_VERSION": "3", "OS_INTERFACE": "public"}


def _clear(monkeypatch, tmp_path):
    import os

    for name in [n for n in os.environ if n.startswith("OS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_the_os_environment_finds_the_image_endpoint(cloud, monkeypatch, tmp_path):
    _clear(monkeypatch, tmp_path)
    for name, value in _os_env(cloud, cloud.users["alice"]).items():
        monkeypatch.setenv(name, value)
    source = source_from_keystone(None)
    assert source.root == cloud.server.url
    assert isinstance(list(source.list_images()), list)  # the Keystone token is accepted


def test_a_cloud_of_clouds_yaml_finds_the_image_endpoint(cloud, monkeypatch, tmp_path):
    _clear(monkeypatch, tmp_path)
    user = cloud.users["alice"]
    config = tmp_path / "clouds.yaml"
    config.write_text(yaml.safe_dump({"clouds": {"old-glance": {
        "auth": {"auth_url": cloud.keystone.auth_url, "username": user.name, "password": user.password,
                 "project_name": user.project, "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": REGION, "identity_api_version": 3}}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(config))
    source = source_from_keystone("old-glance")
    assert source.root == cloud.server.url
    assert isinstance(list(source.list_images()), list)


def test_wrong_credentials_are_a_clear_error(cloud, monkeypatch, tmp_path):
    _clear(monkeypatch, tmp_path)
    env = _os_env(cloud, cloud.users["alice"])
    env["OS_PASSWORD"] = "not-the-password"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SourceError, match="image endpoint|could not be used"):
        source_from_keystone(None)
