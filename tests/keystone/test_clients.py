"""The real clients with Keystone password auth, finding imagedata through the service catalog.

No image endpoint is ever given: glance, openstack and openstacksdk log in to Keystone, read the
``image`` entry of the catalog and talk to the imagedata it points at.
"""
from __future__ import annotations

import json
import os

import openstack
import pytest
import requests

from tests.clients.helpers import (BIN, api, api_create, api_upload, make_file, property_table, read, run_client,
                                  unique)
from tests.keystone.keystone_server import REGION

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]

DATA_SIZE = 1_300_000  # two glanceclient chunks


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("keystone-clients")


@pytest.fixture(scope="module")
def data_file(workdir):
    path = workdir / "disk.raw"
    return str(path), make_file(path, DATA_SIZE, 7)


def password_flags(cloud, name: str) -> list[str]:
    """The --os-* options of a password login as test user ``name`` (no endpoint)."""
    user = cloud.users[name]
    return ["--os-auth-url", cloud.keystone.auth_url, "--os-username", user.name, "--os-password", user.password,
            "--os-project-name", user.project, "--os-user-domain-name", "Default",
            "--os-project-domain-name", "Default", "--os-region-name", REGION]


def glance(cloud, workdir, name, *args, check=True):
    argv = [os.path.join(BIN, "glance"), *password_flags(cloud, name), *args]
    return run_client(argv, workdir=workdir / "glance", check=check)


def osc(cloud, workdir, name, *args, check=True):
    argv = [os.path.join(BIN, "openstack"), "--os-identity-api-version", "3", *password_flags(cloud, name), *args]
    return run_client(argv, workdir=workdir / "openstack", check=check)


def api_show(cloud, name, image_id) -> requests.Response:
    """GET the image record directly, as test user ``name`` (a check, not under test)."""
    return requests.get(f"{cloud.server.url}/v2/images/{image_id}", timeout=10,
                        headers={"X-Auth-Token": cloud.token(name)})


def test_glance_with_password_auth(cloud, workdir, data_file):
    path, data = data_file
    name = unique("glance-ks")
    created = property_table(glance(cloud, workdir, "alice", "image-create", "--name", name, "--disk-format", "raw",
                                    "--container-format", "bare", "--visibility", "private", "--file", path).stdout)
    image_id = created["id"]
    assert created["status"] == "active" and created["owner"] == cloud.users["alice"].project_id
    assert image_id in glance(cloud, workdir, "alice", "image-list").stdout
    shown = property_table(glance(cloud, workdir, "alice", "image-show", image_id).stdout)
    assert shown["size"] == str(len(data))
    out = workdir / "glance-copy.raw"
    glance(cloud, workdir, "alice", "image-download", "--file", str(out), image_id)
    assert read(out) == data
    updated = property_table(glance(cloud, workdir, "alice", "image-update", "--name", f"{name}-2",
                                    "--property", "os_distro=cirros", image_id).stdout)
    assert (updated["name"], updated["os_distro"]) == (f"{name}-2", "cirros")
    glance(cloud, workdir, "alice", "image-deactivate", image_id)
    assert api_show(cloud, "alice", image_id).json()["status"] == "deactivated"
    glance(cloud, workdir, "alice", "image-delete", image_id)
    assert api_show(cloud, "alice", image_id).status_code == 404


def test_openstack_with_password_auth(cloud, workdir, data_file):
    path, data = data_file
    name = unique("osc-ks")
    created = json.loads(osc(cloud, workdir, "alice", "image", "create", "--disk-format", "raw",
                             "--container-format", "bare", "--private", "--file", path, name, "-f", "json").stdout)
    image_id = created["id"]
    assert created["status"] == "active" and created["owner"] == cloud.users["alice"].project_id
    listed = json.loads(osc(cloud, workdir, "alice", "image", "list", "-f", "json").stdout)
    assert image_id in [row["ID"] for row in listed]
    shown = json.loads(osc(cloud, workdir, "alice", "image", "show", name, "-f", "json").stdout)
    assert (shown["id"], shown["size"]) == (image_id, len(data))
    out = workdir / "osc-copy.raw"
    osc(cloud, workdir, "alice", "image", "save", "--chunk-size", "1048576", "--file", str(out), name)
    assert read(out) == data
    osc(cloud, workdir, "alice", "image", "set", "--name", f"{name}-2", "--property", "os_distro=cirros", image_id)
    osc(cloud, workdir, "alice", "image", "set", "--deactivate", image_id)
    shown = api_show(cloud, "alice", image_id).json()
    assert (shown["name"], shown["status"], shown["os_distro"]) == (f"{name}-2", "deactivated", "cirros")
    osc(cloud, workdir, "alice", "image", "delete", image_id)
    assert api_show(cloud, "alice", image_id).status_code == 404


def test_openstack_with_a_clouds_yaml(cloud, workdir, data_file):
    path, data = data_file
    alice, bob = cloud.users["alice"], cloud.users["bob"]
    clouds = {"clouds": {
        f"{user.project}-{user.name}": {
            "auth_type": "password", "region_name": REGION, "identity_api_version": 3,
            "auth": {"auth_url": cloud.keystone.auth_url, "username": user.name, "password": user.password,
                     "project_name": user.project, "user_domain_name": "Default",
                     "project_domain_name": "Default"}}
        for user in (alice, bob)}}
    config = workdir / "clouds.yaml"
    config.write_text(json.dumps(clouds))  # JSON is YAML

    def run(cloud_name, *args):
        argv = ["env", f"OS_CLIENT_CONFIG_FILE={config}", os.path.join(BIN, "openstack"), "--os-cloud", cloud_name,
                *args]
        return run_client(argv, workdir=workdir / "clouds")

    name = unique("clouds-ks")
    token = cloud.token("alice")
    image_id = api_create(api(cloud.server, token), name, visibility="private")
    api_upload(api(cloud.server, token), image_id, data)
    out = workdir / "clouds-copy.raw"
    run("alpha-alice", "image", "save", "--chunk-size", "1048576", "--file", str(out), name)
    assert read(out) == data
    assert name not in run("beta-bob", "image", "list").stdout


def test_openstacksdk_create_and_download(cloud, workdir, data_file, tmp_path, monkeypatch):
    path, data = data_file
    monkeypatch.setenv("HOME", str(tmp_path))
    bob = cloud.users["bob"]
    conn = openstack.connect(auth_type="password", region_name=REGION, load_yaml_config=False, load_envvars=False,
                             auth={"auth_url": cloud.keystone.auth_url, "username": bob.name,
                                   "password": bob.password, "project_name": bob.project,
                                   "user_domain_name": "Default", "project_domain_name": "Default"})
    try:
        image = conn.create_image(unique("sdk-ks"), filename=path, disk_format="raw", container_format="bare",
                                  wait=True, use_import=False)
        assert (image.status, image.owner) == ("active", bob.project_id)
        out = tmp_path / "sdk-copy.raw"
        conn.download_image(image.id, output_file=str(out))
        assert read(out) == data
        conn.delete_image(image.id, wait=True)
        assert conn.get_image(image.id) is None
    finally:
        conn.close()
