"""`imagedata migrate-from-glance` against the real Glance 33, end to end.

In order (one Glance, one imagedata for the module): a dry run changes nothing; project pc goes
into the S3 store; a full run is killed while the 200 MiB image streams, and the next run
completes it with no duplicate and no orphan in the store; every field, tag, member and byte is
then the same through both APIs, except the image whose bytes were altered on Glance's disk,
which is reported and left queued; a third run has nothing to do; --verify-only agrees;
--update-metadata brings a late change over.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest
import requests

import tempfile

from imagedata.app import create_app
from imagedata.db import close_pool, database
from imagedata.migrations import sync_schema
from imagedata.models import Image
from imagedata.service import locations
from imagedata.service.migrate.run import Options, migrate
from imagedata.service.migrate.source import GlanceSource
from tests.clients.helpers import run_client, table_rows
from tests.conftest import make_env
from tests.e2e.proxy import Forwarder
from tests.e2e.server import BIN, REPO
from tests.migrate.conftest import migrate_argv, run_migration
from tests.migrate.glance_fill import ADMIN, USERS, Filler

pytestmark = pytest.mark.e2e
WORKDIR = tempfile.mkdtemp(prefix="migrate-clients-")
# What Glance and imagedata may show differently: the store names, and links.
NOT_COMPARED = {"stores"}
# What an image refused for its bytes does not have (updated_at: when it was refused).
DATA_KEYS = {"status", "checksum", "size", "virtual_size", "os_hash_algo", "os_hash_value", "stores", "updated_at"}


def admin_token(target) -> str:
    if not hasattr(target, "admin"):
        target.admin = target.token("ops", "admin")
    return target.admin


def get(url: str, token: str, **kwargs) -> requests.Response:
    return requests.get(url, headers={"X-Auth-Token": token}, timeout=120, **kwargs)


def all_ids(base: str, token: str, query: str = "") -> list[str]:
    """Every image id an admin lists (with community and hidden ones)."""
    ids = []
    for extra in ("&os_hidden=false", "&os_hidden=true"):
        url = f"{base}/v2/images?visibility=all&limit=1000{extra}{query}"
        ids += [image["id"] for image in get(url, token).json()["images"]]
    return ids


def listed(base: str, token: str, query: str = "") -> list[str]:
    body = get(f"{base}/v2/images?limit=1000{query}", token).json()
    return sorted(image["id"] for image in body["images"])


def digest_of(url: str, token: str) -> str:
    digest = hashlib.sha256()
    with get(url, token, stream=True) as response:
        assert response.status_code == 200, response.text[:200]
        for piece in response.iter_content(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def report_of(path) -> dict:
    with open(path) as f:
        return json.load(f)


def test_dry_run_changes_nothing(glance, filled, target, tmp_path):
    done = run_migration(target, glance, "--dry-run", "--report", str(tmp_path / "dry.json"))
    assert done.returncode == 1, done.stdout + done.stderr  # the staged image would be skipped
    report = report_of(tmp_path / "dry.json")
    assert {o["image_id"]: o["result"] for o in report["images"]} == {
        m.id: "skipped" if m.key == "staged" else "planned" for m in filled.values()}
    assert f"skipped\t{filled['staged'].id}\tstaged\tGlance status uploading" in done.stdout
    assert listed(target.url, admin_token(target), "&visibility=all") == []


def test_one_project_into_the_s3_store(glance, filled, target, seaweedfs):
    done = run_migration(target, glance, "--project", "pc", "--store", "s3")
    assert done.returncode == 0, done.stdout + done.stderr
    public = filled["public"]
    image = get(f"{target.url}/v2/images/{public.id}", admin_token(target)).json()
    assert image["stores"] == "s3" and image["status"] == "active"
    assert digest_of(f"{target.url}/v2/images/{public.id}/file", target.token("pa")) == public.sha256
    assert [k for k in seaweedfs.keys(target.bucket) if public.id in k and "upload" not in k]
    queued = get(f"{target.url}/v2/images/{filled['queued'].id}", admin_token(target)).json()
    assert queued["status"] == "queued" and "stores" not in queued


def test_killed_midway_then_run_again(glance, filled, target, tmp_path):
    big = filled["big"]
    proc = subprocess.Popen(migrate_argv(glance, "--parallel", "2"), cwd=REPO, env=target.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = get(f"{target.url}/v2/images/{big.id}", admin_token(target))
            if answer.status_code == 200 and answer.json()["status"] == "saving" and _bytes_in_local_store(target) > 20 << 20:
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.01)
        else:
            pytest.fail("the big image never streamed")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert get(f"{target.url}/v2/images/{big.id}", admin_token(target)).json()["status"] == "saving"
    again = run_migration(target, glance, "--report", str(tmp_path / "second.json"))
    print(again.stdout)  # the summary table, for the record (pytest -s)
    assert again.returncode == 1, again.stdout + again.stderr  # the altered image is refused
    results = {o["image_id"]: o for o in report_of(tmp_path / "second.json")["images"]}
    assert results[big.id]["result"] == "migrated"
    altered = results[filled["altered"].id]
    assert altered["result"] == "failed" and "md5" in altered["reason"], altered
    assert results[filled["staged"].id]["result"] == "skipped"
    assert {o["result"] for i, o in results.items() if i not in (filled["altered"].id, filled["staged"].id)} \
        <= {"migrated", "unchanged"}
    ids = all_ids(target.url, admin_token(target))
    assert sorted(ids) == sorted(m.id for m in filled.values() if m.key != "staged")  # no duplicates
    assert _store_files(target) == _expected_files(target, filled)  # no orphans


def _bytes_in_local_store(target) -> int:
    return sum(os.path.getsize(path) for path in target.store_files() if "local" in path)


def _store_files(target) -> list[str]:
    return sorted(os.path.basename(path) for path in target.store_files() if "/stores/local/" in path)


def _expected_files(target, filled) -> list[str]:
    """The data file of every image imagedata says is in the local store (image id . attempt)."""
    with sqlite3.connect(target.db_path) as db:
        rows = db.execute("SELECT image_id, attempt FROM imagelocation WHERE store = 'local'").fetchall()
    return sorted(f"{image_id}.{attempt}" for image_id, attempt in rows)


def test_every_field_tag_member_and_byte_is_glances(glance, filled, target):
    for made in filled.values():
        theirs = get(f"{glance.url}/v2/images/{made.id}", ADMIN).json()
        if made.key == "staged":  # skipped: Glance has no settled record for it
            assert theirs["status"] == "uploading"
            assert get(f"{target.url}/v2/images/{made.id}", admin_token(target)).status_code == 404
            continue
        ours = get(f"{target.url}/v2/images/{made.id}", admin_token(target)).json()
        if made.key == "altered":  # refused: the record without data, queued
            assert ours["status"] == "queued" and ours["checksum"] is None and ours["size"] is None
            assert {k: v for k, v in ours.items() if k not in DATA_KEYS} == \
                   {k: v for k, v in theirs.items() if k not in DATA_KEYS}
            continue
        assert {k: v for k, v in ours.items() if k not in NOT_COMPARED} == \
               {k: v for k, v in theirs.items() if k not in NOT_COMPARED}, made.key
        if theirs["visibility"] == "shared":
            assert get(f"{target.url}/v2/images/{made.id}/members", admin_token(target)).json()["members"] == \
                   get(f"{glance.url}/v2/images/{made.id}/members", ADMIN).json()["members"], made.key
        if made.sha256 is not None:
            assert digest_of(f"{target.url}/v2/images/{made.id}/file", admin_token(target)) == made.sha256, made.key
            assert digest_of(f"{glance.url}/v2/images/{made.id}/file", ADMIN) == made.sha256, made.key
    assert digest_of(f"{glance.url}/v2/images/{filled['altered'].id}/file", ADMIN) != filled["altered"].sha256
    assert get(f"{target.url}/v2/images/{filled['altered'].id}/file", admin_token(target)).status_code == 204


def test_run_again_has_nothing_to_do(glance, filled, target, tmp_path):
    done = run_migration(target, glance, "--report", str(tmp_path / "third.json"))
    assert done.returncode == 1  # the altered image is refused again, the staged one skipped
    results = {o["image_id"]: o["result"] for o in report_of(tmp_path / "third.json")["images"]}
    assert results.pop(filled["altered"].id) == "failed"
    assert results.pop(filled["staged"].id) == "skipped"
    assert set(results.values()) == {"unchanged"}, done.stdout
    # the summary table: result -> images (its ASCII rule under the header is one cell)
    summary = {row[0]: row[1] for row in table_rows(done.stdout) if len(row) > 1}
    assert (summary["unchanged"], summary["failed"], summary["skipped"], summary["migrated"]) == (
        str(len(filled) - 2), "1", "1", "0")


def test_verify_only(glance, filled, target):
    everything = run_migration(target, glance, "--verify-only", "--bytes")
    assert everything.returncode == 1
    assert f"differs\t{filled['altered'].id}" in everything.stdout
    assert f"skipped\t{filled['staged'].id}" in everything.stdout
    others = [arg for made in filled.values() if made.key not in ("altered", "staged") for arg in ("--image", made.id)]
    good = run_migration(target, glance, "--verify-only", "--bytes", *others)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("verified\t") == len(filled) - 2


def test_update_metadata_brings_late_changes(glance, filled, target):
    made = filled["raw-shared"]
    patch = requests.patch(f"{glance.url}/v2/images/{made.id}", headers={
        "X-Auth-Token": USERS["pa"], "Content-Type": "application/openstack-images-v2.1-json-patch"},
        json=[{"op": "add", "path": "/late", "value": "yes"}, {"op": "replace", "path": "/name", "value": "renamed"}],
        timeout=30)
    assert patch.status_code == 200, patch.text
    refused = run_migration(target, glance, "--image", made.id)
    assert refused.returncode == 1 and "conflict" in refused.stdout and "property late" in refused.stdout
    updated = run_migration(target, glance, "--image", made.id, "--update-metadata")
    assert updated.returncode == 0, updated.stdout + updated.stderr
    ours = get(f"{target.url}/v2/images/{made.id}", admin_token(target)).json()
    assert ours["late"] == "yes" and ours["name"] == "renamed"
    assert ours["updated_at"] == get(f"{glance.url}/v2/images/{made.id}", ADMIN).json()["updated_at"]


def _glance_ids(base: str, token: str, *args: str) -> set[str]:
    """The ids `glance image-list` prints for ``token``."""
    done = run_client([os.path.join(BIN, "glance"), "--os-image-url", base, "--os-auth-token", token,
                       "image-list", *args], workdir=WORKDIR)
    return {row[0] for row in table_rows(done.stdout)[1:]}


def _openstack_ids(base: str, token: str, *args: str) -> set[str]:
    """The ids `openstack image list` prints for ``token``."""
    done = run_client([os.path.join(BIN, "openstack"), "--os-auth-type", "admin_token", "--os-token", token,
                       "--os-endpoint", f"{base}/v2", "image", "list", "-f", "value", "-c", "ID", *args],
                      workdir=WORKDIR)
    return set(done.stdout.split())


LISTINGS = ("", "&visibility=all", "&visibility=community", "&visibility=shared", "&member_status=all",
            "&os_hidden=true", "&visibility=all&os_hidden=true", "&member_status=pending", "&member_status=rejected")


@pytest.mark.parametrize("project", ["pa", "pb", "pc", "pd"])
def test_each_project_lists_what_it_listed_on_glance(glance, filled, target, project):
    """Each project's token on both sides (Glance: a test token; imagedata: its own)."""
    ours, theirs = target.token(project), USERS[project]
    skipped = filled["staged"].id  # not carried: Glance lists it, mid-import
    for query in LISTINGS:
        assert listed(target.url, ours, query) == [i for i in listed(glance.url, theirs, query) if i != skipped], query
    for made in filled.values():
        if made.id == skipped:
            continue
        on_glance = get(f"{glance.url}/v2/images/{made.id}/members", theirs)
        here = get(f"{target.url}/v2/images/{made.id}/members", ours)
        assert here.status_code == on_glance.status_code, made.key  # 403 on public and community images
        if here.status_code == 200:
            assert here.json()["members"] == on_glance.json()["members"], made.key


@pytest.mark.parametrize("project", ["pa", "pb"])
def test_the_clients_show_each_project_what_glance_showed(glance, filled, target, project):
    """`glance` and `openstack image` with the project's token against both services."""
    ours, theirs = target.token(project), USERS[project]
    assert _glance_ids(target.url, ours, "--visibility", "all") == _glance_ids(glance.url, theirs, "--visibility", "all")
    assert _openstack_ids(target.url, ours) == _openstack_ids(glance.url, theirs)


def test_a_dropped_download_continues_with_range(glance, tmp_path):
    """Glance's connection is reset after every 1 MiB it sends: the transfer goes on from the byte
    it reached (Range), and the image arrives whole and verified (in-process, a fresh imagedata)."""
    data = os.urandom(3 * (1 << 20) + 4321)
    made = Filler(glance, str(tmp_path)).create("reset", "pa", data)
    flaky = Forwarder(glance.port, reset_every=1 << 20, downstream=True)
    env = make_env(tmp_path, IMAGEDATA_DATABASE_URL=f"sqlite:///{tmp_path}/imagedata.db")
    app = create_app(env)
    try:
        sync_schema()
        services = app.extensions["imagedata"]
        source = GlanceSource(f"http://127.0.0.1:{flaky.port}/v2", lambda: ADMIN, chunk_size=64 << 10)
        (outcome,) = migrate(services, source, Options(images=(made.id,)))
        assert (outcome.result, outcome.copied) == ("migrated", len(data)), outcome
        assert outcome.resumed >= 3 and flaky.resets >= 3
        with database.connection_context():
            image = Image.get_by_id(made.id)
            (copy,) = locations.copies_of(made.id)
            reader = services.stores.get(copy.store).open_range(image.id, copy.attempt, 0, image.size)
            assert b"".join(reader) == data
            reader.close()
    finally:
        flaky.stop()
        close_pool()
