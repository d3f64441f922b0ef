"""`imagedata verify` on both drivers: matches, corruption, missing data, deactivation, filters,
the bounded read rate, quiet output off a terminal and a progress bar on one."""
from __future__ import annotations

import glob
import hashlib
import os
import pty
import select
import subprocess
import sys
import time
import uuid

import pytest

from imagedata.db import database
from imagedata.models import Image
from imagedata.service.verify import RateLimit
from tests.ops.helpers import parse_metrics, value

OCTET = "application/octet-stream"
# Checks whose database part is the same on every backend run on SQLite only (time budget).
SQLITE_ONLY = pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True, scope="module")


def _put(client, auth, data, store=None, project_auth=None, **fields):
    headers = project_auth or auth
    body = {"name": "v", "disk_format": "raw", "container_format": "bare", **fields}
    image_id = client.post("/v2/images", json=body, headers=headers).get_json()["id"]
    extra = {"X-Image-Meta-Store": store} if store else {}
    response = client.put(f"/v2/images/{image_id}/file", data=data,
                          headers={**headers, "Content-Type": OCTET, **extra})
    assert response.status_code == 204, response.data
    return image_id


def _data_file(tmp_path, image_id):
    (path,) = glob.glob(str(tmp_path / "stores" / "*" / f"{image_id}.*"))
    return path


def _lines(result):
    return [line for line in result.output.splitlines() if "\t" in line]


def test_all_good_exits_0_with_a_summary(runner, client, auth):
    for size in (0, 1, 3 << 20):
        _put(client, auth, os.urandom(size))
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    assert "verifying 3 image(s)" in result.output
    assert "| ok         |      3 |" in result.output
    assert "\x1b[" not in result.output  # no terminal codes off a terminal
    assert _lines(result) == []


def test_corrupt_missing_and_wrong_size_are_found_and_exit_1(runner, client, auth, tmp_path):
    good = _put(client, auth, b"g" * 5000)
    flipped = _put(client, auth, b"f" * 5000)
    short = _put(client, auth, b"s" * 5000)
    gone = _put(client, auth, b"m" * 5000)
    with open(_data_file(tmp_path, flipped), "r+b") as f:
        f.seek(4321)
        f.write(b"F")
    os.truncate(_data_file(tmp_path, short), 4999)
    os.unlink(_data_file(tmp_path, gone))
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1, result.output
    found = {line.split("\t")[1]: line.split("\t") for line in _lines(result)}
    assert set(found) == {flipped, short, gone}
    assert found[flipped][0] == "corrupt" and "md5" in found[flipped][3]
    assert found[short][0] == "corrupt" and "4999 bytes, expected 5000" in found[short][3]
    assert found[gone][0] == "missing"
    assert "| ok         |      1 |       5000 |" in result.output
    assert "| corrupt    |      2 |" in result.output and "| missing    |      1 |" in result.output
    # Nothing was changed without --deactivate.
    assert client.get(f"/v2/images/{flipped}", headers=auth).get_json()["status"] == "active"
    assert good not in found


def test_deactivate_stops_downloads_of_corrupt_images(runner, client, auth, admin_token, tmp_path):
    bad = _put(client, auth, b"b" * 3000)
    fine = _put(client, auth, b"o" * 3000)
    with open(_data_file(tmp_path, bad), "r+b") as f:
        f.write(b"B")
    result = runner.invoke(args=["verify", "--deactivate"])
    assert result.exit_code == 1
    assert f"corrupt\t{bad}\tlocal\tmd5 (checksum) does not match (deactivated)" in result.output
    assert client.get(f"/v2/images/{bad}", headers=auth).get_json()["status"] == "deactivated"
    assert client.get(f"/v2/images/{bad}/file", headers=auth).status_code == 403
    assert client.get(f"/v2/images/{fine}/file", headers=auth).status_code == 200
    # A second run still reports it (deactivated images are checked too), and changes nothing.
    again = runner.invoke(args=["verify", "--deactivate"])
    assert again.exit_code == 1 and f"corrupt\t{bad}\tlocal\tmd5 (checksum) does not match\n" in again.output


@SQLITE_ONLY
def test_the_recorded_hash_algorithm_is_used(app, runner, client, auth):
    data = os.urandom(70_000)
    image_id = _put(client, auth, data)
    with database.connection_context():
        Image.update(os_hash_algo="sha256", os_hash_value=hashlib.sha256(data).hexdigest()).where(
            Image.id == image_id).execute()
    assert runner.invoke(args=["verify"]).exit_code == 0
    with database.connection_context():
        Image.update(os_hash_value=hashlib.sha256(data + b"x").hexdigest()).where(Image.id == image_id).execute()
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1 and "sha256 does not match" in result.output


def test_filters_by_store_project_and_image(runner, client, auth, make_token, tmp_path):
    mine = _put(client, auth, b"1" * 100)
    archived = _put(client, auth, b"2" * 100, store="slow")
    theirs = _put(client, auth, b"3" * 100, project_auth={"X-Auth-Token": make_token("p2")})
    for image_id in (mine, archived, theirs):
        os.unlink(_data_file(tmp_path, image_id))

    def missing(*args):
        result = runner.invoke(args=["verify", *args])
        assert result.exit_code == 1, result.output
        return {line.split("\t")[1] for line in _lines(result)}

    assert missing("--store", "slow") == {archived}
    assert missing("--project", "p2") == {theirs}
    assert missing("--image", mine) == {mine}
    assert missing("--project", "p1", "--store", "local") == {mine}
    assert runner.invoke(args=["verify", "--project", "nobody"]).exit_code == 0


@SQLITE_ONLY
@pytest.mark.parametrize("args, message", [
    (["--max-rate", "fast"], "not a rate"),
    (["--max-rate", "0"], "not a rate"),
    (["--store", "nope"], "no store 'nope'"),
    (["--image", str(uuid.uuid4())], "with data"),
])
def test_bad_arguments_are_usage_errors(runner, args, message):
    result = runner.invoke(args=["verify", *args])
    assert result.exit_code == 2 and message in result.output, result.output


@SQLITE_ONLY
def test_max_rate_bounds_the_read_rate(runner, client, auth):
    _put(client, auth, os.urandom(3 << 20))
    started = time.monotonic()
    result = runner.invoke(args=["verify", "--max-rate", "4M"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0
    assert elapsed >= 0.7  # 3 MiB at 4 MiB/s: at least ~0.75 s (the last piece is not waited for)


def test_rate_limit_waits_exactly_what_the_bound_requires():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limit = RateLimit(1000, clock=lambda: now[0], sleep=sleep)
    limit.spend(500)
    now[0] += 0.1
    limit.spend(500)
    assert slept == [0.5, pytest.approx(0.4)]
    assert RateLimit(None, sleep=sleep).spend(10**9) is None and len(slept) == 2


@SQLITE_ONLY
def test_findings_are_recorded_in_the_metrics(runner, client, auth, admin_token, tmp_path):
    _put(client, auth, b"k" * 100)
    os.unlink(_data_file(tmp_path, _put(client, auth, b"l" * 100)))
    runner.invoke(args=["verify"])
    samples = parse_metrics(client.get("/metrics", headers={"X-Auth-Token": admin_token}).get_data(as_text=True))
    assert value(samples, "imagedata_verify_last_images", result="ok") == 1
    assert value(samples, "imagedata_verify_last_images", result="missing") == 1
    assert value(samples, "imagedata_verify_last_images", result="corrupt") == 0
    assert value(samples, "imagedata_verify_last_run_timestamp_seconds") > time.time() - 60


@pytest.fixture
def s3_bucket(env, seaweedfs):
    """A fresh bucket, configured as the only store of the app under test (request before ``app``)."""
    bucket = seaweedfs.make_bucket(f"verify-{uuid.uuid4().hex[:8]}")
    env.update(IMAGEDATA_STORES=f"s3={seaweedfs.store_url(bucket, 'img')}", **seaweedfs.env())
    return bucket


@SQLITE_ONLY
def test_s3_store(s3_bucket, seaweedfs, runner, client, auth):
    """The same checks through the S3 driver, on a real SeaweedFS."""
    bucket = s3_bucket
    good = _put(client, auth, os.urandom(2 << 20))
    flipped = _put(client, auth, b"x" * 1000)
    gone = _put(client, auth, b"y" * 1000)
    assert runner.invoke(args=["verify"]).exit_code == 0
    s3 = seaweedfs.client()
    keys = {key.split("/")[-1].split(".")[0]: key for key in seaweedfs.keys(bucket, "img/")}
    s3.put_object(Bucket=bucket, Key=keys[flipped], Body=b"x" * 999 + b"X")
    s3.delete_object(Bucket=bucket, Key=keys[gone])
    result = runner.invoke(args=["verify", "--store", "s3"])
    assert result.exit_code == 1, result.output
    found = {line.split("\t")[1]: line.split("\t")[0] for line in _lines(result)}
    assert found == {flipped: "corrupt", gone: "missing"}
    assert "| ok         |      1 |    2097152 |" in result.output
    assert good not in found


@SQLITE_ONLY
def test_progress_bar_on_a_terminal(env, client, auth):
    _put(client, auth, os.urandom(2 << 20))
    command = [os.path.join(os.path.dirname(sys.executable), "imagedata"), "verify", "--max-rate", "4M"]
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary,
                            env={**os.environ, **env, "COLUMNS": "100", "TERM": "xterm"})
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    assert proc.wait(10) == 0, output[-2000:]
    text = output.decode(errors="replace")
    assert "verifying 1 image(s)" in text and "━" in text  # the bar, drawn on the terminal
    assert "\x1b[" in text
    assert "MiB/s" in text or "KiB/s" in text  # binary units, as the summary gives them
    assert "MB/s" not in text and "kB/s" not in text
    assert "ok" in text and "bytes read" in text
