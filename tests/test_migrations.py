"""Schema versions and `imagedata db-sync`, on SQLite and on PostgreSQL (``db_backend``).

A version-1 database (the frozen DDL in tests/fixtures/schema_v1, with rows in every state)
is upgraded and must end with its rows intact and exactly the schema a fresh database gets
from the models; a step left out of imagedata/migrations.py fails here.
"""
from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time

import pytest
from peewee import BigIntegerField, IntegerField

from imagedata.app import create_app
from imagedata.db import close_pool, database, init_database
from imagedata.migrations import (STEPS, SchemaError, SchemaVersion, Step, check_schema, current_version,
                                  latest_version, sync_schema)
from imagedata.models import METADEF_MODELS, Image, ImageLocation, ImageMember, ImageProperty, ImageTag, ProjectQuota, Task, Token
from tests.conftest import make_env
from tests.databases import make_version_1_database

LATEST = latest_version()
BIN = os.path.dirname(sys.executable)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACTIVE, QUEUED, SAVING, DELETED = (f"{d * 8}-{d * 4}-4{d * 3}-8{d * 3}-{d * 12}" for d in "1234")


@pytest.fixture
def new_database(db_backend, request, tmp_path):
    """A factory of empty databases of the backend under test (URLs); the proxy is closed after."""
    made = []

    def factory() -> str:
        if db_backend == "sqlite":
            made.append((None, f"db{len(made) + 1}"))
            return f"sqlite:///{tmp_path}/{made[-1][1]}/imagedata.db"
        pg = request.getfixturevalue("postgres")
        made.append((pg, pg.create_database("imagedata_migrate")))
        return pg.url(made[-1][1])

    yield factory
    close_pool()
    for pg, name in made:
        if pg is not None:
            pg.drop_database(name)


@pytest.fixture
def empty_db(new_database):
    """The proxy pointed at a new empty database; returns its URL."""
    url = new_database()
    if url.startswith("sqlite"):
        os.makedirs(os.path.dirname(url.split("sqlite:///", 1)[1]), exist_ok=True)
    init_database(url)
    return url


def versions() -> list[tuple[int, str]]:
    with database.connection_context():
        return [(row.version, row.description) for row in SchemaVersion.select().order_by(SchemaVersion.version)]


def describe_schema() -> dict:
    """Every table's columns, indexes and foreign keys, as the database itself reports them."""
    schema = {}
    with database.connection_context():
        for table in database.get_tables():
            columns = {c.name: (c.data_type.lower(), c.null, c.primary_key, c.default)
                       for c in database.get_columns(table)}
            indexes = {(i.name, tuple(i.columns), i.unique) for i in database.get_indexes(table)}
            keys = {(k.column, k.dest_table, k.dest_column) for k in database.get_foreign_keys(table)}
            schema[table] = (columns, indexes, keys)
    return schema


def schema_difference(upgraded: dict, fresh: dict) -> str:
    """Say which tables, columns and indexes an upgrade got wrong (or which step is missing)."""
    lines = []
    for table in sorted(set(upgraded) | set(fresh)):
        if table not in upgraded or table not in fresh:
            lines.append(f"table {table}: {'missing after the upgrade' if table in fresh else 'not in the models'}")
            continue
        (up_columns, up_indexes, up_keys), (new_columns, new_indexes, new_keys) = upgraded[table], fresh[table]
        for name in sorted(set(up_columns) | set(new_columns)):
            if up_columns.get(name) != new_columns.get(name):
                lines.append(f"column {table}.{name}: upgraded {up_columns.get(name)}, models {new_columns.get(name)}")
        for kind, up, new in (("index", up_indexes, new_indexes), ("foreign key", up_keys, new_keys)):
            lines += [f"{kind} of {table} {item}: only after the upgrade" for item in sorted(up - new)]
            lines += [f"{kind} of {table} {item}: only in the models" for item in sorted(new - up)]
    return ("the upgraded schema is not the models' (a step missing from imagedata/migrations.py?):\n  "
            + "\n  ".join(lines))


def fresh_schema(new_database) -> dict:
    """The schema of a database made from scratch from the models (in a second database)."""
    url = new_database()
    if url.startswith("sqlite"):
        os.makedirs(os.path.dirname(url.split("sqlite:///", 1)[1]), exist_ok=True)
    previous = database.obj
    init_database(url)
    try:
        sync_schema()
        return describe_schema()
    finally:
        close_pool()
        database.initialize(previous)


def test_empty_database_gets_the_latest_schema_once(empty_db):
    assert sync_schema() == (None, LATEST)
    assert versions() == [(LATEST, "schema created")]
    assert sync_schema() == (LATEST, LATEST)
    assert versions() == [(LATEST, "schema created")]
    with database.connection_context():
        assert check_schema() == LATEST
    tables = set(describe_schema())
    assert tables == {m._meta.table_name for m in (Image, ImageLocation, ImageProperty, ImageTag, ImageMember, Token,
                                                   ProjectQuota, Task, SchemaVersion) + METADEF_MODELS}


def test_version_1_database_is_upgraded_with_its_rows(empty_db, new_database):
    make_version_1_database(empty_db)
    with database.connection_context():
        assert current_version() == 1
        with pytest.raises(SchemaError, match=r"at version 1 .* needs version \d+: .*run `imagedata db-sync`"):
            check_schema()

    assert sync_schema() == (1, LATEST)
    assert versions() == [(1, "unversioned schema adopted as version 1")] + [
        (step.version, step.description) for step in STEPS]
    upgraded, fresh = describe_schema(), fresh_schema(new_database)
    assert upgraded == fresh, schema_difference(upgraded, fresh)
    assert sync_schema() == (LATEST, LATEST)  # idempotent
    assert len(versions()) == 1 + len(STEPS)

    with database.connection_context():
        assert check_schema() == LATEST
        active = Image.get_by_id(ACTIVE)
        assert (active.name, active.status, active.visibility, active.protected, active.os_hidden) == (
            "cirros", "active", "public", True, False)
        assert (active.size, active.virtual_size, active.min_disk, active.min_ram) == (5 << 30, 10 << 30, 1, 512)
        assert (active.checksum, active.os_hash_algo, len(active.os_hash_value)) == (
            "5d41402abc4b2a76b9719d911017c592", "sha512", 128)
        assert (active.attempt, active.attempt_store, active.attempt_state) == (None, None, None)
        assert [(c.store, c.attempt, c.size, c.status, c.error) for c in ImageLocation.select()] == [
            ("local", "a" * 32, 5 << 30, "active", None)]
        assert active.created_at == datetime.datetime(2025, 3, 1, 10, 0, 0)
        saving = Image.get_by_id(SAVING)
        assert (saving.status, saving.attempt, saving.attempt_host, saving.attempt_pid, saving.reserved_bytes,
                saving.attempt_store) == ("saving", "b" * 32, "host-a:0123abcd", 4242, 1 << 20, "slow")
        assert saving.attempt_heartbeat == datetime.datetime(2025, 3, 3, 12, 0, 30)
        queued = Image.get_by_id(QUEUED)
        assert (queued.name, queued.status, queued.os_hidden, queued.size, queued.owner) == (
            None, "queued", True, None, "p2")
        deleted = Image.get_by_id(DELETED)
        assert (deleted.deleted, deleted.deleted_at, deleted.status) == (
            True, datetime.datetime(2025, 3, 4, 14, 0, 0), "deleted")
        assert {(p.image_id, p.name, p.value) for p in ImageProperty.select()} == {
            (ACTIVE, "os_distro", "cirros"), (ACTIVE, "hw_disk_bus", "virtio"),
            (SAVING, "note", "a long value with 'quotes' and unicode: été")}
        assert sorted(t.value for t in ImageTag.select().where(ImageTag.image == ACTIVE)) == ["gold", "tested"]
        member = ImageMember.get()
        assert (member.image_id, member.member, member.status) == (QUEUED, "p9", "accepted")
        assert {(t.token_id, t.project_id, t.roles, t.revoked) for t in Token.select()} == {
            ("tok1", "p1", "admin,member", False), ("tok2", "p2", "reader", True)}
        quota = ProjectQuota.get_by_id("p1")
        assert (quota.image_size_total, quota.image_count_total, quota.image_count_uploading, quota.serial) == (
            10 << 30, 5, None, 17)
        # The upgraded schema takes the new columns and still cascades deletes to the children.
        Image.update(attempt_state="attempt-state").where(Image.id == SAVING).execute()
        assert Image.get_by_id(SAVING).attempt_state == "attempt-state"
        Image.delete().where(Image.id == ACTIVE).execute()
        assert ImageProperty.select().where(ImageProperty.image == ACTIVE).count() == 0
        assert ImageTag.select().count() == 0
        assert ImageLocation.select().count() == 0


KEPT, BROKEN = "55555555-5555-4555-8555-555555555555", "66666666-6666-4666-8666-666666666666"


def test_version_3_database_with_data_kept_bytes_and_an_upload_in_flight_gets_locations(empty_db, new_database):
    """Version 4 moves each image's one store into the location table and renames the attempt's
    columns; a version-3 database holds every kind of row that touches: data (one copy flagged
    broken by scrub), the kept bytes of an interrupted upload, an upload in flight."""
    make_version_1_database(empty_db)
    assert sync_schema(STEPS[:2]) == (1, 3)
    with database.connection_context():
        database.execute_sql(f"""
            INSERT INTO "image" ("id", "status", "visibility", "protected", "os_hidden", "min_disk", "min_ram",
                                 "owner", "created_at", "updated_at", "deleted", "size", "store", "data_key",
                                 "data_error", "upload_token", "upload_state", "reserved_bytes", "partial_size",
                                 "partial_total", "partial_expires")
            VALUES ('{KEPT}', 'queued', 'shared', FALSE, FALSE, 0, 0, 'p1', '2025-03-05 10:00:00',
                    '2025-03-05 10:00:00', FALSE, NULL, 'local', NULL, NULL, '{"e" * 32}', '.kept.part', 700,
                    300, 1000, '2025-03-06 10:00:00'),
                   ('{BROKEN}', 'active', 'shared', FALSE, FALSE, 0, 0, 'p1', '2025-03-05 11:00:00',
                    '2025-03-05 11:00:00', FALSE, 42, 'slow', '{"f" * 32}', 'data file missing', NULL, NULL, 0,
                    NULL, NULL, NULL)""")
    assert sync_schema() == (3, LATEST)
    upgraded, fresh = describe_schema(), fresh_schema(new_database)
    assert upgraded == fresh, schema_difference(upgraded, fresh)
    with database.connection_context():
        kept = Image.get_by_id(KEPT)
        assert (kept.status, kept.attempt, kept.attempt_store, kept.attempt_state, kept.reserved_bytes) == (
            "queued", "e" * 32, "local", ".kept.part", 700)
        assert (kept.kept_size, kept.kept_total, kept.kept_expires) == (300, 1000, datetime.datetime(2025, 3, 6, 10))
        saving = Image.get_by_id(SAVING)
        assert (saving.attempt, saving.attempt_store) == ("b" * 32, "slow")
        copies = {c.image_id: (c.store, c.attempt, c.size, c.status, c.error) for c in ImageLocation.select()}
        assert copies == {ACTIVE: ("local", "a" * 32, 5 << 30, "active", None),
                          BROKEN: ("slow", "f" * 32, 42, "broken", "data file missing")}


def test_a_table_rebuild_keeps_every_child_row(empty_db):
    """A NOT NULL column makes SQLite rebuild the table: the children must not be cascaded away."""
    make_version_1_database(empty_db)
    extra = Step(LATEST + 1, "test: a NOT NULL column with a default",
                 lambda m: [m.add_column("image", "test_generation", IntegerField(default=7))])
    assert sync_schema(STEPS + (extra,)) == (1, LATEST + 1)
    with database.connection_context():
        assert [row[0] for row in database.execute_sql('SELECT DISTINCT test_generation FROM "image"')] == [7]
        assert (ImageProperty.select().count(), ImageTag.select().count(), ImageMember.select().count()) == (3, 2, 1)
        Image.delete().where(Image.id == QUEUED).execute()
        assert ImageMember.select().count() == 0  # the foreign key still cascades
        # This code's own steps stop one version short: the database is too new for it.
        with pytest.raises(SchemaError, match=f"version {LATEST + 1}, newer than this imagedata"):
            check_schema()
    with pytest.raises(SchemaError, match="newer than this imagedata"):
        sync_schema()
    assert versions()[-1][0] == LATEST + 1


def test_a_failed_step_changes_nothing(empty_db):
    make_version_1_database(empty_db)
    broken = Step(LATEST + 1, "test: fails half-way", lambda m: [
        m.add_column("image", "test_half", BigIntegerField(null=True)),
        m.add_column("image", "name", BigIntegerField(null=True)),  # exists: the database refuses
    ])
    with pytest.raises(Exception):
        sync_schema(STEPS + (broken,))
    with database.connection_context():
        assert current_version() == 1
        assert "test_half" not in {c.name for c in database.get_columns("image")}
        assert "schema_version" not in database.get_tables()
        assert Image.select().count() == 4


def test_steps_must_follow_each_other():
    skipping = Step(LATEST + 2, "test: skips a version", lambda m: [])
    with pytest.raises(ValueError, match=f"has version {LATEST + 2}, not {LATEST + 1}"):
        sync_schema(STEPS + (skipping,))


def test_unversioned_database_with_upload_state_is_version_2(empty_db):
    """A database made by create_tables() after upload_state joined the model, before versions."""
    make_version_1_database(empty_db)
    with database.connection_context():
        database.execute_sql('ALTER TABLE "image" ADD COLUMN "upload_state" TEXT')
        assert current_version() == 2
    assert sync_schema() == (2, LATEST)
    assert versions()[0] == (2, "unversioned schema adopted as version 2")


def test_commands_on_an_empty_database_say_run_db_sync(empty_db, tmp_path):
    app = create_app(make_env(tmp_path, IMAGEDATA_DATABASE_URL=empty_db))
    result = app.test_cli_runner().invoke(args=["token", "create", "--project", "p1"])
    assert result.exit_code == 1
    assert "the database has no imagedata tables: run `imagedata db-sync`" in result.output
    assert "Traceback" not in result.output
    done = app.test_cli_runner().invoke(args=["db-sync"])
    assert done.exit_code == 0, done.output
    assert f"database ready at schema version {LATEST} (created)" in done.output
    again = app.test_cli_runner().invoke(args=["db-sync"])
    assert f"database ready at schema version {LATEST} (already up to date)" in again.output
    assert app.test_cli_runner().invoke(args=["token", "create", "--project", "p1"]).exit_code == 0


class HeldLock:
    """Hold the lock db-sync takes (PostgreSQL: the advisory lock; SQLite: the write lock)."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self):
        from imagedata.migrations import ADVISORY_LOCK_KEY

        if self.url.startswith("sqlite"):
            import sqlite3

            self.con = sqlite3.connect(self.url.split("sqlite:///", 1)[1], isolation_level=None)
            self.con.execute("PRAGMA journal_mode=wal")  # as imagedata's first connection leaves it
            self.con.execute("BEGIN IMMEDIATE")
        else:
            import psycopg2

            self.con = psycopg2.connect(self.url)
            self.con.autocommit = True
            self.con.cursor().execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        return self

    def __exit__(self, *exc):
        if self.url.startswith("sqlite"):
            self.con.execute("ROLLBACK")
        self.con.close()


def test_concurrent_db_syncs_create_the_schema_once(empty_db, tmp_path):
    """Two hosts start at once: both db-syncs wait for the lock, one creates, the other finds it done."""
    env = {**os.environ, **make_env(tmp_path, IMAGEDATA_DATABASE_URL=empty_db)}
    with HeldLock(empty_db):
        procs = [subprocess.Popen([os.path.join(BIN, "imagedata"), "db-sync"], cwd=REPO, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
        time.sleep(2.5)  # long enough for both to start and reach the lock
        assert [p.poll() for p in procs] == [None, None], "db-sync did not wait for the lock"
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted("(created)" in out for out in outputs) == [False, True], outputs
    assert sum("(already up to date)" in out for out in outputs) == 1, outputs
    assert versions() == [(LATEST, "schema created")]

