"""Tempest 47.0.0 for the tests: its own cached virtualenv, a tempest.conf, and a run read back per test.

The virtualenv (pinned by tempest-constraints.txt) is built once under
``~/.cache/imagedata/tempest-venv-<version>-<hash>`` (or ``$IMAGEDATA_TEMPEST_VENV``), as
Keystone's is. A run gets a fresh workspace: ``.stestr.conf`` pointing at the installed
Tempest, ``etc/tempest.conf`` for one Keystone and one image service (found in Keystone's
catalog under ``catalog_type``), dynamic credentials made by Keystone's bootstrap admin, and
only the image service enabled, with the image features this service offers.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time

from tests import toolvenv

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPEST_VERSION = "47.0.0"
REQUIREMENTS = (f"tempest=={TEMPEST_VERSION}",)
CONSTRAINTS = os.path.join(HERE, "tempest-constraints.txt")

STESTR_CONF = """\
[DEFAULT]
test_path={package}/test_discover
top_dir={package}
group_regex=([^\\.]*\\.)*
"""

TEMPEST_CONF = """\
[DEFAULT]
log_dir = {root}/logs
log_file = tempest.log

[oslo_concurrency]
lock_path = {root}/locks

[auth]
use_dynamic_credentials = true
create_isolated_networks = false
admin_username = admin
admin_password = {admin_password}
admin_project_name = admin
admin_domain_name = Default
default_credentials_domain_name = Default

[identity]
uri_v3 = {auth_url}
auth_version = v3
region = {region}
disable_ssl_certificate_validation = true

[identity-feature-enabled]
api_v2 = false

[service_available]
glance = true
nova = false
neutron = false
cinder = false
swift = false
horizon = false

[image]
catalog_type = {catalog_type}
region = {region}
endpoint_type = publicURL
image_caching_enabled = {image_caching}
disk_formats = raw,ami,ari,aki
build_timeout = 60

[image-feature-enabled]
# What imagedata offers: the v2 API, interoperable import, os_glance_* reserved, sha512 hashes;
# no locations, conversion, format enforcement, HTTP store or store weights.
api_v2 = true
import_image = true
os_glance_reserved = true
manage_locations = false
image_conversion = false
image_format_enforcement = false
do_secure_hash = true
http_store_enabled = false
store_weight_enabled = false
"""


class TempestSetupError(RuntimeError):
    """Tempest's virtualenv could not be built here."""


@dataclasses.dataclass(frozen=True)
class TestResult:
    """One Tempest test's outcome."""

    status: str  # success, fail, skip (or xfail, uxsuccess)
    reason: str
    details: str


def ensure_tempest_venv() -> str:
    """Build Tempest's virtualenv unless a complete one is cached; returns its path."""
    venv = toolvenv.venv_path("tempest", TEMPEST_VERSION, REQUIREMENTS, CONSTRAINTS, "IMAGEDATA_TEMPEST_VENV")
    return toolvenv.ensure_venv(venv, REQUIREMENTS, CONSTRAINTS, "import tempest.cmd.main, subunit, testtools",
                                TempestSetupError)


def collect(events: list[dict]) -> dict[str, TestResult]:
    """Each selected test's result. A test of a class whose set-up failed or skipped was only
    listed ("exists"): it takes its class's outcome, so every selected test is counted once."""
    results, classes = {}, {}
    for event in events:
        test_id, result = event["id"], TestResult(event["status"], event["reason"], event["details"])
        if test_id.startswith(("setUpClass (", "tearDownClass (")):
            if test_id.startswith("setUpClass ("):
                classes[test_id[len("setUpClass ("):-1]] = result
            elif result.status == "fail":  # a failed clean-up is a failure of the whole run
                results[test_id] = result
        elif event["status"] != "exists" or test_id not in results:
            results[test_id] = result
    for test_id, result in list(results.items()):
        if result.status == "exists":
            results[test_id] = classes.get(test_id.rsplit(".", 1)[0], TestResult("not run", "", ""))
    return results


def by_status(results: dict[str, TestResult]) -> dict[str, list[str]]:
    """The test ids of each outcome, sorted."""
    grouped: dict[str, list[str]] = {}
    for test_id, result in sorted(results.items()):
        grouped.setdefault(result.status, []).append(test_id)
    return grouped


def skips_by_class(results: dict[str, TestResult], package: str = "tempest.api.image.v2.") -> set[tuple[str, int, str]]:
    """The skipped tests as (class under ``package``, how many, Tempest's reason)."""
    counts: dict[tuple[str, str], int] = {}
    for test_id, result in results.items():
        if result.status == "skip":
            key = (test_id.rsplit(".", 1)[0].removeprefix(package), result.reason)
            counts[key] = counts.get(key, 0) + 1
    return {(cls, count, reason) for (cls, reason), count in counts.items()}


def summary(results: dict[str, TestResult], elapsed: float) -> str:
    """One line of counts by outcome, then one line per skipped test with Tempest's reason."""
    grouped = by_status(results)
    lines = [f"Tempest {len(results)} image tests in {elapsed:.0f} s: "
             + ", ".join(f"{len(ids)} {status}" for status, ids in sorted(grouped.items()))]
    lines += [f"  skipped {test_id}: {results[test_id].reason}" for test_id in grouped.get("skip", [])]
    return "\n".join(lines)


class Workspace:
    """One Tempest workspace in ``root`` for a Keystone and the image service in its catalog."""

    def __init__(self, root, venv: str, auth_url: str, admin_password: str, region: str, catalog_type: str,
                 caching: bool = False):
        self.root, self.venv = str(root), venv
        self.settings = {"root": self.root, "auth_url": auth_url, "admin_password": admin_password,
                         "region": region, "catalog_type": catalog_type,
                         "image_caching": "true" if caching else "false"}
        self.config = os.path.join(self.root, "etc", "tempest.conf")

    def write(self) -> "Workspace":
        """Write .stestr.conf and etc/tempest.conf."""
        package = subprocess.run([self.python, "-c", "import os, tempest; print(os.path.dirname(tempest.__file__))"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        for folder in ("etc", "logs", "locks"):
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        with open(os.path.join(self.root, ".stestr.conf"), "w") as f:
            f.write(STESTR_CONF.format(package=package))
        with open(self.config, "w") as f:
            f.write(TEMPEST_CONF.format(**self.settings))
        return self

    @property
    def python(self) -> str:
        return os.path.join(self.venv, "bin", "python")

    def run(self, regex: str, concurrency: int, timeout: float = 1200) -> tuple[dict[str, TestResult], float]:
        """Run the tests whose ids match ``regex``; their results by id, and the wall time in seconds."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "IMAGEDATA_", "TEMPEST_"))}
        env.update(HOME=self.root, TEMPEST_CONFIG_DIR=os.path.dirname(self.config), TEMPEST_CONFIG="tempest.conf")
        started = time.monotonic()
        with open(os.path.join(self.root, "subunit.bin"), "wb") as out:
            subprocess.run([os.path.join(self.venv, "bin", "tempest"), "run", "--config-file", self.config,
                            "--regex", regex, "--concurrency", str(concurrency), "--subunit"],
                           cwd=self.root, env=env, stdout=out, stderr=subprocess.DEVNULL, timeout=timeout)
        elapsed = time.monotonic() - started
        with open(os.path.join(self.root, "subunit.bin"), "rb") as stream:
            parsed = subprocess.run([self.python, os.path.join(HERE, "tempest_subunit.py")], stdin=stream,
                                    capture_output=True, text=True, check=True)
        return collect([json.loads(line) for line in parsed.stdout.splitlines()]), elapsed

    def log(self) -> str:
        """The end of Tempest's own log."""
        try:
            with open(os.path.join(self.root, "logs", "tempest.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""
