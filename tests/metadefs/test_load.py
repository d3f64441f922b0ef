"""`imagedata metadefs load DIR`: our own small files, bad files, reloading, and Glance's 32 files."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.helpers import skip_or_fail
from tests.metadefs.conftest import NS, SQLITE_ONLY, ok, without_stamps
from tests.metadefs.glance_files import GlanceFilesUnavailable, glance_metadefs_dir

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "metadefs")


@pytest.fixture
def folder(tmp_path):
    """A copy of the test definition files, to edit."""
    return shutil.copytree(FIXTURES, tmp_path / "defs")


def load(runner, folder, *options):
    """Run the command; returns (exit code, output)."""
    result = runner.invoke(args=["metadefs", "load", str(folder), *options])
    return result.exit_code, result.output


def namespaces(api) -> dict:
    return {n["namespace"]: n for n in ok(api().get(f"{NS}?limit=1000"))["namespaces"]}


def test_load_creates_the_namespaces(api, runner, folder):
    code, output = load(runner, folder)
    assert code == 0, output
    assert output.splitlines() == [
        "created\tExample::Compute\t(3 resource type associations, 1 objects, 2 properties, 2 tags)",
        "created\tExample::Minimal\t(0 resource type associations, 0 objects, 0 properties, 0 tags)",
        f"loaded 2 namespace(s) from {folder}: 2 created, 0 updated"]
    shown = without_stamps(ok(api("b-member").get(f"{NS}/Example::Compute")))  # public: any project reads it
    assert (shown["owner"], shown["visibility"], shown["protected"]) == ("admin", "public", True)
    assert shown["properties"] == {
        "cpu_count": {"title": "CPU count", "type": "integer", "minimum": 1, "default": "2"},
        "cpu_policy": {"title": "CPU policy", "description": "How guest CPUs are placed on host CPUs.",
                       "type": "string", "enum": ["shared", "dedicated"], "default": "shared"}}
    assert shown["objects"][0]["required"] == ["action"]
    assert shown["objects"][0]["properties"]["enabled"]["default"] == "False"
    assert [t["name"] for t in shown["tags"]] == ["compute", "example"]
    assert [a["name"] for a in shown["resource_type_associations"]] == [
        "OS::Glance::Image", "OS::Nova::Flavor", "OS::Cinder::Volume"]
    minimal = ok(api().get(f"{NS}/Example::Minimal"))
    assert (minimal["visibility"], minimal["protected"], minimal["owner"]) == ("private", False, "admin")
    assert api("b-member").get(f"{NS}/Example::Minimal").status_code == 404


def test_loading_again_updates_and_keeps_the_rest(api, runner, folder):
    assert load(runner, folder)[0] == 0
    assert api().post(f"{NS}/Example::Compute/tags/added-by-api").status_code == 201
    compute = folder / "example-compute.json"
    document = json.loads(compute.read_text())
    document["display_name"] = "Renamed"
    document["properties"]["cpu_count"]["minimum"] = 2
    document["objects"][0]["description"] = "Changed."
    document["tags"] = [{"name": "example"}]
    compute.write_text(json.dumps(document))
    code, output = load(runner, folder, "--owner", "ops")
    assert code == 0, output
    assert "updated\tExample::Compute\t(3 resource type associations, 1 objects, 2 properties, 1 tags)" in output
    shown = ok(api().get(f"{NS}/Example::Compute"))
    assert (shown["display_name"], shown["owner"], shown["properties"]["cpu_count"]["minimum"]) == (
        "Renamed", "ops", 2)
    assert shown["objects"][0]["description"] == "Changed."
    assert sorted(t["name"] for t in shown["tags"]) == ["added-by-api", "compute", "example"]  # merged
    code, output = load(runner, folder, "--replace")
    assert "updated\tExample::Compute\t(3 resource type associations, 1 objects, 2 properties, 1 tags; removed 2 " \
           "not in the file)" in output
    assert [t["name"] for t in ok(api().get(f"{NS}/Example::Compute"))["tags"]] == ["example"]
    assert load(runner, folder, "--replace")[1].count("removed") == 0  # idempotent


@SQLITE_ONLY
@pytest.mark.parametrize("name, text, problem", [
    ("bad.json", "{not json", "not a readable JSON file"),
    ("bad.json", "[]", "Provided object does not match schema 'namespace': the body must be a JSON object."),
    ("bad.json", '{"namespace": "x", "typo": 1}', "Additional properties are not allowed ('typo' was unexpected)"),
    ("bad.json", '{"namespace": "x", "properties": {"p": {"type": "string"}}}', "'title' is a required property"),
    ("bad.json", '{"namespace": "x", "tags": [{"name": "t"}, {"name": "t"}]}', "tag 't' is listed twice"),
    ("bad.json", '{"namespace": "x\\u0000"}', "contains a NUL character"),
    ("zz-again.json", '{"namespace": "Example::Minimal"}', "namespace 'Example::Minimal' is also defined by"),
])
def test_a_bad_file_loads_nothing(api, runner, folder, name, text, problem):
    (folder / name).write_text(text)
    code, output = load(runner, folder)
    assert code == 1
    assert output.startswith(f"Error: nothing loaded: {folder / name}: ") and problem in output, output
    assert namespaces(api) == {}


def test_folders_without_definitions(runner, tmp_path):
    code, output = load(runner, tmp_path)
    assert (code, output.strip()) == (1, f"Error: nothing loaded: {tmp_path}: no definition files (*.json) found")
    assert load(runner, tmp_path / "missing")[0] == 2  # click: the folder does not exist


@pytest.fixture(scope="session")
def glance_files():
    """The folder of Glance 33's own definition files (from its package on the registry)."""
    try:
        return glance_metadefs_dir()
    except GlanceFilesUnavailable as exc:
        skip_or_fail(str(exc))


def test_glances_own_files_load_and_reload(api, runner, glance_files):
    files = sorted(f for f in os.listdir(glance_files) if f.endswith(".json"))
    assert len(files) == 32
    code, output = load(runner, glance_files)
    assert code == 0, output
    assert output.splitlines()[-1] == f"loaded 32 namespace(s) from {glance_files}: 32 created, 0 updated"
    listed = namespaces(api)
    assert len(listed) == 32 and "OS::Compute::Libvirt" in listed
    types = {t["name"] for t in ok(api().get("/v2/metadefs/resource_types"))["resource_types"]}
    assert {"OS::Glance::Image", "OS::Nova::Flavor", "OS::Cinder::Volume", "OS::Nova::Server"} <= types
    libvirt = ok(api("a-reader").get(f"{NS}/OS::Compute::Libvirt?resource_type=OS::Glance::Image"))
    assert "hw_boot_menu" in libvirt["properties"]
    before = {name: without_stamps(ok(api().get(f"{NS}/{name}"))) for name in listed}
    code, output = load(runner, glance_files, "--replace")
    assert (code, output.splitlines()[-1]) == (0, f"loaded 32 namespace(s) from {glance_files}: 0 created, "
                                                  "32 updated")
    assert "removed" not in output
    assert {name: without_stamps(ok(api().get(f"{NS}/{name}"))) for name in listed} == before
