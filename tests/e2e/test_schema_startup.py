"""What the real server does at start-up with the schema, on SQLite and PostgreSQL (``db_backend``).

gunicorn's master (gunicorn.conf.py's ``on_starting``) refuses an outdated database with a
message naming ``imagedata db-sync``, and serves once db-sync upgraded it. (That it sets up an
empty database is what every other server test starts with, on both backends.)
"""
from __future__ import annotations

import pytest
import requests

from imagedata.migrations import latest_version
from tests.databases import make_version_1_database

pytestmark = pytest.mark.e2e
ACTIVE = "11111111-1111-4111-8111-111111111111"


def test_outdated_database_refuses_to_start_until_db_sync(start_server, db_backend, server_database):
    srv = start_server("srv", start=False, **server_database(db_backend))
    make_version_1_database(srv.database_url)
    with pytest.raises(RuntimeError, match="gunicorn exited"):
        srv.start()
    assert srv.proc.returncode == 1
    log = srv.log()
    assert (f"imagedata cannot start: the database schema is at version 1 and this imagedata needs version "
            f"{latest_version()}: back up the database, then run `imagedata db-sync`") in log
    assert "Traceback" not in log
    assert "Booting worker" not in log  # refused before any worker started

    refused = srv.run_cli("token", "create", "--project", "p1")
    assert refused.returncode == 1 and "run `imagedata db-sync`" in refused.stderr, refused.stderr
    assert f"schema version {latest_version()} (upgraded from version 1)" in srv.cli("db-sync")

    srv.start()
    image = requests.get(f"{srv.url}/v2/images/{ACTIVE}", headers={"X-Auth-Token": srv.token("p1")}, timeout=10)
    assert image.status_code == 200, image.text
    assert (image.json()["name"], image.json()["size"], image.json()["visibility"]) == ("cirros", 5 << 30, "public")
