"""The `imagedata` command as a newcomer runs it: its own commands only, a version, no files
made by asking for help, and errors that name the database they looked at."""
from __future__ import annotations

import os
import subprocess

import pytest

from imagedata import __version__
from tests.e2e.server import BIN, free_port

OUR_COMMANDS = ("db-sync", "token", "quota", "recover", "scrub", "locate", "verify", "migrate-from-glance", "link",
                "metadefs")
FLASK_ONLY = ("run", "shell", "routes", "--app", "--debug", "--env-file", "--no-debug")


def imagedata(cwd, *args, **env):
    """Run the installed console script in ``cwd`` with a clean IMAGEDATA_* environment."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("IMAGEDATA_", "FLASK_")) and k != "PROMETHEUS_MULTIPROC_DIR"}
    clean.update(env)
    return subprocess.run([os.path.join(BIN, "imagedata"), *args], cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=60)


def everything_in(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_help_lists_only_our_commands_and_touches_no_file(tmp_path):
    (tmp_path / "var" / "metrics").mkdir(parents=True)  # a server's metrics folder: still untouched
    before = everything_in(tmp_path)
    done = imagedata(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.split("Commands:", 1)[1].splitlines() if line.strip()]
    assert sorted(listed) == sorted(OUR_COMMANDS)
    words = done.stdout.split()
    assert [word for word in FLASK_ONLY if word in words] == []
    assert "--version" in words
    for args in (["token", "--help"], ["verify", "--help"], ["quota", "set", "--help"], []):
        assert imagedata(tmp_path, *args).returncode in (0, 2)
    assert everything_in(tmp_path) == before


def test_version(tmp_path):
    done = imagedata(tmp_path, "--version")
    assert (done.returncode, done.stdout) == (0, f"imagedata {__version__}\n")
    assert everything_in(tmp_path) == []


@pytest.mark.parametrize("args", [("token", "list"), ("token", "create", "--project", "p1"),
                                  ("quota", "show", "--project", "p1"), ("scrub",), ("recover",), ("verify",),
                                  ("locate", "00000000-0000-0000-0000-000000000000")])
def test_a_command_run_elsewhere_names_the_database_it_looked_for_and_creates_nothing(tmp_path, args):
    done = imagedata(tmp_path, *args)
    assert done.returncode == 1
    assert done.stderr == (f"Error: no database at {tmp_path}/var/imagedata.db (from IMAGEDATA_DATA_DIR or "
                           "IMAGEDATA_DATABASE_URL, or ./var of the current folder): run this command where "
                           "`make run` runs, set those variables as the server has them, or create the "
                           "database with `imagedata db-sync`\n")
    assert everything_in(tmp_path) == []


@pytest.mark.parametrize("args", [("db-sync",), ("token", "list")])
def test_an_unreachable_database_is_named_without_its_password(tmp_path, args):
    url = f"postgresql://imagedata:s3cret@127.0.0.1:{free_port()}/images"
    done = imagedata(tmp_path, *args, IMAGEDATA_DATABASE_URL=url)
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: the database postgresql://***@127.0.0.1:{url.split(':')[-1]} "
                                  "cannot be used: "), done.stderr
    assert "s3cret" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert everything_in(tmp_path) == []


def test_a_bad_setting_is_one_line_not_a_traceback(tmp_path):
    done = imagedata(tmp_path, "token", "list", IMAGEDATA_STORES="local=ftp://nowhere")
    assert done.returncode == 1
    assert done.stderr == "Error: configuration: IMAGEDATA_STORES: local must be a file:/// or s3:// URL\n"
    assert everything_in(tmp_path) == []


def test_db_sync_then_a_command_works_and_names_the_database(tmp_path):
    done = imagedata(tmp_path, "db-sync")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"database ready at schema version {latest()} (created): "
                           f"{tmp_path}/var/imagedata.db\n")
    listed = imagedata(tmp_path, "token", "list")
    assert (listed.returncode, listed.stdout) == (0, "")


def latest() -> int:
    from imagedata.migrations import STEPS, latest_version

    return latest_version(STEPS)
