"""Metadata definitions through the real clients: python-glanceclient's md-* commands (which validate
every answer against the served schema documents) and `openstack image metadef ...` (openstacksdk),
against a real gunicorn server with token auth.
"""
from __future__ import annotations

import json
import os
import sys

import pytest

from tests.clients.helpers import assert_clean_error, property_table, run_client, table_rows

pytestmark = pytest.mark.e2e

BIN = os.path.dirname(sys.executable)
EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "metadefs", "example-compute.json")


@pytest.fixture(scope="module")
def glance(server, admin, workdir):
    """glance(*args, token=admin, check=True) -> Result."""

    def run(*args, token=None, check=True):
        argv = [os.path.join(BIN, "glance"), "--os-image-url", server.url, "--os-auth-token", token or admin, *args]
        return run_client(argv, workdir=workdir / "glance-md", check=check)

    return run


@pytest.fixture(scope="module")
def osc(server, admin, workdir):
    """osc(*args) -> parsed ``-f json`` output (admin_token auth)."""

    def run(*args):
        argv = [os.path.join(BIN, "openstack"), "--os-auth-type", "admin_token", "--os-token", admin,
                "--os-endpoint", f"{server.url}/v2", *args]
        output = run_client(argv, workdir=workdir / "osc-md").stdout
        return json.loads(output) if output.strip() else None

    return run


def test_glanceclient_md_commands(glance, member):
    imported = property_table(glance("md-namespace-import", "--file", EXAMPLE).stdout)
    assert (imported["namespace"], imported["protected"], imported["visibility"]) == (
        "Example::Compute", "True", "public")
    assert json.loads(imported["properties"]) == ["cpu_count", "cpu_policy"]
    shown = property_table(glance("md-namespace-show", "Example::Compute", "--resource-type",
                                  "OS::Glance::Image").stdout)
    assert json.loads(shown["properties"]) == ["ex_cpu_count", "ex_cpu_policy"]
    assert table_rows(glance("md-resource-type-list").stdout)[1:] == [
        ["OS::Glance::Image"], ["OS::Nova::Flavor"], ["OS::Cinder::Volume"]]
    action = property_table(glance("md-object-property-show", "Example::Compute", "Watchdog", "action").stdout)
    assert json.loads(action["enum"]) == ["reset", "poweroff", "none"]
    # (glanceclient 4.13's --append sends a boolean header value and fails before any request, on Glance too.)
    glance("md-tag-create-multiple", "--names", "x,y", "Example::Compute")
    assert sorted(table_rows(glance("md-tag-list", "Example::Compute").stdout)[1:]) == [["x"], ["y"]]
    assert_clean_error(glance("md-namespace-delete", "Example::Compute", check=False), "HTTP 403",
                       "Metadata definition namespace Example::Compute is protected and cannot be deleted.")
    assert_clean_error(glance("md-namespace-create", "mine", token=member, check=False), "HTTP 403",
                       "You are not authorized to complete add_metadef_namespace action.")
    glance("md-namespace-update", "--protected", "False", "Example::Compute")
    glance("md-namespace-delete", "Example::Compute")
    assert_clean_error(glance("md-namespace-show", "Example::Compute", check=False), "HTTP 404")


def test_openstackclient_metadef_commands(osc):
    made = osc("image", "metadef", "namespace", "create", "--public", "--description", "by osc", "osc-ns",
               "-f", "json")
    assert (made["namespace"], made["visibility"], made["owner"]) == ("osc-ns", "public", "ops")
    assert osc("image", "metadef", "property", "create", "--name", "pp", "--title", "PP", "--type", "string",
               "--schema", '{"type": "string"}', "osc-ns", "-f", "json") == {"name": "pp", "title": "PP",
                                                                           "type": "string"}
    association = osc("image", "metadef", "resource", "type", "association", "create", "osc-ns",
                      "OS::Nova::Flavor", "-f", "json")
    assert association["name"] == "OS::Nova::Flavor"
    assert osc("image", "metadef", "resource", "type", "association", "list", "osc-ns", "-f", "json") == [
        {"Name": "OS::Nova::Flavor"}]
    assert osc("image", "metadef", "namespace", "show", "osc-ns", "-f", "json")["description"] == "by osc"
    osc("image", "metadef", "namespace", "delete", "osc-ns")
    assert {"namespace": "osc-ns"} not in osc("image", "metadef", "namespace", "list", "-f", "json")
