"""The `imagedata` command: tokens, quotas, recovery and scrubbing."""

from imagedata.db import database
from imagedata.models import Image, ImageLocation
from imagedata.service.tokens import caller_for_token


def run(runner, *args):
    result = runner.invoke(args=list(args))
    return result


def test_db_sync_is_idempotent(runner):
    for _ in range(2):
        result = run(runner, "db-sync")
        assert result.exit_code == 0, result.output
        assert "database ready" in result.output


def test_token_create_prints_the_secret_last_and_stores_only_a_hash(runner, app):
    result = run(runner, "token", "create", "--project", "p9", "--roles", "admin,member")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    with database.connection_context():
        caller = caller_for_token(secret)
        assert caller.project_id == "p9" and caller.is_admin and "reader" in caller.roles
        stored = [row[0] for row in database.execute_sql("select token_hash from token").fetchall()]
    assert secret not in stored and len(stored) == 1


def test_token_list_and_revoke(runner, app):
    secret = run(runner, "token", "create", "--project", "p9").stdout.strip().splitlines()[-1]
    listing = run(runner, "token", "list").output
    token_id = listing.split()[0]
    assert "p9" in listing and "active" in listing
    assert run(runner, "token", "revoke", token_id).exit_code == 0
    with database.connection_context():
        assert caller_for_token(secret) is None
    assert "revoked" in run(runner, "token", "list").output
    assert run(runner, "token", "revoke", "nope").exit_code != 0


def test_quota_set_and_show(runner):
    result = run(runner, "quota", "set", "--project", "p1", "--image-size-total", "1000", "--image-count-total", "3")
    assert result.exit_code == 0, result.output
    shown = run(runner, "quota", "show", "--project", "p1").output
    assert "image_size_total\tlimit=1000\tusage=0" in shown
    assert "image_count_total\tlimit=3\tusage=0" in shown
    assert "image_count_uploading\tlimit=unlimited" in shown


def test_scrub_reports_then_fixes_orphans_and_broken_images(runner, client, auth, new_image, upload, tmp_path):
    image = new_image()
    assert upload(image["id"], b"data!").status_code == 204
    local = tmp_path / "stores" / "local"
    stray = local / "stray.bin"
    stray.write_bytes(b"junk")
    partial = local / f".{image['id']}.{'c' * 32}.part"
    partial.write_bytes(b"half")
    (data_file,) = [p for p in local.iterdir() if p.name.startswith(image["id"] + ".")]
    data_file.write_bytes(b"dat")  # truncated on disk

    report = run(runner, "scrub")
    assert report.exit_code == 1
    assert "2 orphan(s), 1 broken image(s)" in report.output
    assert stray.exists() and partial.exists()

    fixed = run(runner, "scrub", "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert not stray.exists() and not partial.exists() and data_file.exists()
    download = client.get(f"/v2/images/{image['id']}/file", headers=auth)
    assert download.status_code == 503
    assert str(local) not in download.get_data(as_text=True)
    with database.connection_context():
        (copy,) = ImageLocation.select().where(ImageLocation.image == image["id"])
        assert (copy.status, copy.error) == ("broken", "data is 3 bytes, expected 5")


def test_recover_resets_dead_uploads(runner, new_image, app):
    image = new_image()
    with database.connection_context():
        Image.update(status="saving", attempt="d" * 32, attempt_host="elsewhere", attempt_pid=1,
                     attempt_heartbeat=None, attempt_store="local").where(Image.id == image["id"]).execute()
    result = run(runner, "recover")
    assert result.exit_code == 0
    assert image["id"] in result.output
    with database.connection_context():
        assert Image.get_by_id(image["id"]).status == "queued"


def test_locate_shows_the_data_file(runner, new_image, upload, tmp_path):
    image = new_image()
    assert upload(image["id"], b"located").status_code == 204
    result = run(runner, "locate", image["id"])
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("data\t")]
    path = line.split("\t", 1)[1]
    assert path.startswith(str(tmp_path / "stores" / "local")) and open(path, "rb").read() == b"located"
    assert run(runner, "locate", "00000000-0000-0000-0000-000000000000").exit_code != 0
