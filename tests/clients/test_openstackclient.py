"""python-openstackclient 10.5.0 / openstacksdk 4.22.0 (`openstack image ...`), unchanged, against gunicorn.

Two ways to reach a Keystone-less image service:
* ``--os-auth-type none --os-endpoint ROOT``: version discovery with ``GET /``, then ``X-Auth-Token: notused``
  (needs IMAGEDATA_AUTH=noauth; the token mode must refuse ``notused`` with 401);
* ``--os-auth-type admin_token --os-token TOKEN --os-endpoint ROOT/v2``: no discovery, the token sent raw.
The SDK sends ``Accept: */*`` (POST, GET/DELETE by id, file GET), ``''`` (PUT file, PATCH) or
``application/json`` (list, stores). The service answers errors to openstacksdk as JSON whatever its
Accept says (a text body would only show the HTTP reason phrase), so the user sees our message.
"""
from __future__ import annotations

import json
import os
import sys

import pytest
import requests

from tests.clients.helpers import (
    BIG_SIZE, CAP, NO_SUCH_ID, api, api_create, api_names, api_show, api_upload, assert_clean_error, corrupt, read,
    run_client, sha512, store_file, unique,
)

pytestmark = pytest.mark.e2e

OPENSTACK = os.path.join(os.path.dirname(sys.executable), "openstack")
MODES = ("none", "admin_token")


@pytest.fixture(scope="module")
def targets(server, noauth_server, member):
    """mode -> (server, argv prefix, token for direct API checks)."""
    return {
        "none": (noauth_server, ["--os-auth-type", "none", "--os-endpoint", noauth_server.url], "notused"),
        "admin_token": (server, ["--os-auth-type", "admin_token", "--os-token", member,
                                 "--os-endpoint", f"{server.url}/v2"], member),
    }


@pytest.fixture(scope="module")
def osc(targets, workdir):
    """osc(mode, *args, check=True) -> Result; ``-f json`` output is parsed by the caller."""

    def run(mode, *args, check=True, auth=None):
        argv = [OPENSTACK, *(auth or targets[mode][1]), *args]
        return run_client(argv, workdir=workdir / "osc", check=check)

    return run


def create_args(name, path):
    return ["image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", path, name]


@pytest.mark.parametrize("mode", MODES)
def test_create_list_show_set_save_delete(osc, targets, data_file, workdir, mode):
    srv, _, token = targets[mode]
    session = api(srv, token)
    path, data = data_file
    name = unique(f"osc-{mode}")

    created = json.loads(osc(mode, *create_args(name, path), "-f", "json").stdout)
    image_id = created["id"]
    assert (created["name"], created["status"], created["size"]) == (name, "active", len(data))
    assert created["checksum"] == api_show(session, image_id).json()["checksum"]
    image = api_show(session, image_id).json()
    assert (image["os_hash_algo"], image["os_hash_value"]) == ("sha512", sha512(data))
    assert image["owner_specified.openstack.object"] == f"images/{name}"  # the SDK's extra properties, kept

    listed = json.loads(osc(mode, "image", "list", "-f", "json").stdout)
    assert {"ID": image_id, "Name": name, "Status": "active"} in listed

    shown = json.loads(osc(mode, "image", "show", name, "-f", "json").stdout)  # GET by name 404, then ?name=
    assert (shown["id"], shown["status"], shown["size"]) == (image_id, "active", len(data))

    assert osc(mode, "image", "set", "--property", "k=v", "--property", "k2=v2", name).output.strip() == ""
    image = api_show(session, image_id).json()
    assert (image["k"], image["k2"], image["name"]) == ("v", "v2", name)

    out = workdir / f"{image_id}.out"
    assert osc(mode, "image", "save", "--file", str(out), name).output.strip() == ""
    assert read(out) == data

    assert osc(mode, "image", "delete", name).output.strip() == ""
    assert api_show(session, image_id).status_code == 404
    assert name not in api_names(session)


@pytest.mark.parametrize("mode", MODES)
def test_stores_list(osc, mode):
    stores = json.loads(osc(mode, "image", "stores", "list", "-f", "json").stdout)
    assert [(s["ID"], s["Default"]) for s in stores] == [("local", True), ("slow", None)]


def test_list_follows_next_beyond_the_default_page(osc, server):
    """27 images: more than the default page of 25, so the SDK follows `next`."""
    token = server.token(unique("osc-list"), "member,reader")
    session = api(server, token)
    ids = {api_create(session, f"osc-list-{i:02d}") for i in range(27)}
    auth = ["--os-auth-type", "admin_token", "--os-token", token, "--os-endpoint", f"{server.url}/v2"]
    listed = json.loads(osc("admin_token", "image", "list", "-f", "json", auth=auth).stdout)
    assert {row["ID"] for row in listed} == ids


def test_corrupted_store_file_fails_image_save(osc, server, member, data_file, workdir):
    session = api(server, member)
    path, data = data_file
    name = unique("osc-corrupt")
    image_id = api_create(session, name)
    api_upload(session, image_id, data)
    corrupt(store_file(server, image_id))
    result = osc("admin_token", "image", "save", "--file", str(workdir / f"{image_id}.out"), name, check=False)
    assert_clean_error(result, "Unable to download image: checksum mismatch (sha512)", sha512(data))


def test_auth_none_token_is_refused_by_token_mode(osc, server, workdir):
    """--os-auth-type none sends X-Auth-Token: notused; a token-mode server answers 401 (JSON: the SDK lists)."""
    assert requests.get(f"{server.url}/v2/images", headers={"X-Auth-Token": "notused"}, timeout=10).status_code == 401
    result = osc("none", "image", "list", check=False,
                 auth=["--os-auth-type", "none", "--os-endpoint", server.url])
    assert_clean_error(result, "HttpException: 401", f"{server.url}/v2/images",
                       "The request you have made requires authentication.")


# ------------------------------------------------------------------ errors reach the user as messages

def test_404_show_unknown_image(osc):
    """GET by id 404, then ?name= and ?os_hidden=True find nothing: the CLI's own message."""
    assert_clean_error(osc("admin_token", "image", "show", NO_SUCH_ID, check=False), f"No Image found for {NO_SUCH_ID}")


def test_409_create_with_an_existing_id(osc, server, member):
    image_id = api_create(api(server, member), unique("osc-409"))
    result = osc("admin_token", "image", "create", "--id", image_id, "--disk-format", "raw",
                 "--container-format", "bare", unique("osc-dup"), check=False)
    # POST with Accept: */*: the SDK gets JSON and shows our message
    assert_clean_error(result, "ConflictException: 409", f"{server.url}/v2/images", "already exists")


def test_413_over_the_size_cap_and_cleanup(osc, server, member, big_file):
    assert BIG_SIZE > CAP
    session = api(server, member)
    path, _ = big_file
    name = unique("osc-413")
    result = osc("admin_token", *create_args(name, path), check=False)
    # PUT with an empty Accept: the SDK gets JSON and shows our message naming the cap
    assert_clean_error(result, "HttpException: 413", "/file", "image size cap")
    # then the CLI deletes the image it created (as with Glance)
    assert name not in api_names(session)
