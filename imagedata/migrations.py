"""Schema versions and migrations: ``imagedata db-sync`` brings a database to this code's schema.

The schema has a version, recorded in the table ``schema_version`` (one row per version a
database went through, the current one being the highest). Version 1 is the schema that
``models.py`` created before migrations existed; a database with imagedata's tables but no
``schema_version`` table was made that way and is adopted at its version.

``sync_schema()`` (the ``db-sync`` command) is idempotent:

- an empty database gets every table straight from the models, recorded at ``LATEST``;
- an older one runs the ``STEPS`` above its version, in order;
- an up-to-date one is left alone; a newer one (made by a later imagedata) is refused.

Everything runs in one transaction (DDL is transactional on PostgreSQL and SQLite), so a
step that fails changes nothing. Concurrent runs (two hosts starting) queue on a lock: an
advisory lock on PostgreSQL, the write lock on SQLite. On SQLite foreign keys are off while
the steps run, because playhouse.migrate rebuilds a table for most changes (all but adding
a nullable column or an index) and dropping the old copy would otherwise cascade; the
foreign keys are checked before the commit.

Adding a schema change (say a retry counter on the image):

1. change the model in ``imagedata/models.py``: ``upload_retries = IntegerField(default=0)``;
2. append a step to ``STEPS``, with the next version number, a description and a function
   that returns playhouse.migrate operations. Give the step its own field objects, never
   the model's (the model may change again in a later version)::

       def add_upload_retries(migrator):
           return [migrator.add_column("image", "upload_retries", IntegerField(default=0))]

       Step(4, "image.upload_retries: how often the upload was retried", add_upload_retries),

   A NOT NULL column needs a default; playhouse.migrate fills the existing rows with it;
3. run ``tests/test_migrations.py``: it upgrades a version-1 database full of rows on
   SQLite and PostgreSQL and checks the result is exactly the schema a fresh database gets
   from the models (so a forgotten step fails there).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

from peewee import (AutoField, BigIntegerField, CharField, DateTimeField, ForeignKeyField, IntegerField, Model,
                    PostgresqlDatabase, SqliteDatabase, TextField)
from playhouse.migrate import Operation, SchemaMigrator

from imagedata.db import database, write_transaction
from imagedata.migrations_metadefs import add_metadefs
from imagedata.models import ALL_MODELS, utcnow

log = logging.getLogger(__name__)

# Every migration takes this PostgreSQL advisory lock (the bytes of "imagedat").
ADVISORY_LOCK_KEY = 0x696D616765646174
VERSION_TABLE = "schema_version"
# The table whose presence marks a database as imagedata's (version 1 and later).
MARKER_TABLE = "image"


@dataclass(frozen=True)
class Step:
    """One schema change: the version it leads to, what it does, and its operations."""

    version: int
    description: str
    operations: Callable[[SchemaMigrator], Sequence]


def add_upload_state(migrator: SchemaMigrator) -> list:
    """Version 2: the store writer's state of the upload in flight, for clean-up from any host."""
    return [migrator.add_column("image", "upload_state", TextField(null=True))]


# Ordered: each step's version is the previous one plus one (version 1 has no step).
def add_partial_upload(migrator: SchemaMigrator) -> list:
    """Step 3: what an interrupted upload kept for a resume (bytes, declared total, expiry)."""
    return [migrator.add_column("image", name, field) for name, field in (
        ("partial_size", BigIntegerField(null=True)), ("partial_total", BigIntegerField(null=True)),
        ("partial_expires", DateTimeField(null=True)))]


class Run:
    """A step's own work between schema operations (copying rows), run like one of them."""

    def __init__(self, work: Callable[[], None]):
        self.work = work

    def run(self) -> None:
        """Do the work (inside the migration's transaction)."""
        self.work()


def _create_location_table() -> None:
    """The image location table as version 4 creates it (its own fields, never the model's;
    the classes are named as the models are, because peewee names indexes after them)."""

    class Image(Model):
        id = CharField(primary_key=True, max_length=36)

        class Meta:
            database = database

    class ImageLocation(Model):
        id = AutoField()
        image = ForeignKeyField(Image, backref="+", on_delete="CASCADE")
        store = CharField(max_length=64)
        attempt = CharField(max_length=32)
        size = BigIntegerField()
        status = CharField(max_length=16, default="active")
        error = CharField(max_length=255, null=True)
        created_at = DateTimeField()

        class Meta:
            database = database
            indexes = ((("image", "store"), True),)

    database.create_tables([ImageLocation])


V4_RENAMED = (("upload_token", "attempt"), ("upload_host", "attempt_host"), ("upload_pid", "attempt_pid"),
              ("upload_heartbeat", "attempt_heartbeat"), ("upload_state", "attempt_state"),
              ("partial_size", "kept_size"), ("partial_total", "kept_total"), ("partial_expires", "kept_expires"))


def _copy_locations() -> None:
    """Each image's one store and data object become its first location; the store of an
    upload in flight (or of kept bytes) becomes the attempt's store."""
    database.execute_sql(
        'INSERT INTO "imagelocation" ("image_id", "store", "attempt", "size", "status", "error", "created_at") '
        'SELECT "id", "store", "data_key", COALESCE("size", 0), '
        "CASE WHEN \"data_error\" IS NULL THEN 'active' ELSE 'broken' END, \"data_error\", \"updated_at\" "
        'FROM "image" WHERE "store" IS NOT NULL AND "data_key" IS NOT NULL AND "deleted" = %s '
        "AND \"status\" IN ('active', 'deactivated')" % ("FALSE" if isinstance(database.obj, PostgresqlDatabase)
                                                            else "0"))
    database.execute_sql('UPDATE "image" SET "attempt_store" = "store" WHERE "upload_token" IS NOT NULL')


def add_locations(migrator: SchemaMigrator) -> list:
    """Step 4: several copies per image (a location table), one word for the upload attempt."""
    return ([Run(_create_location_table),
             migrator.add_column("image", "attempt_store", CharField(max_length=64, null=True)),
             Run(_copy_locations),
             migrator.drop_index("image", "image_upload_token")]
            + [migrator.rename_column("image", old, new) for old, new in V4_RENAMED]
            + [migrator.add_index("image", ("attempt",), False)]
            + [migrator.drop_column("image", name) for name in ("store", "data_key", "data_error")])


def add_task_table(migrator: SchemaMigrator) -> list:
    """Step 4: the records of asynchronous tasks (/v2/tasks, an image's import tasks)."""

    class Task(Model):  # the step's own copy (the model may change later); its name names the indexes
        id = CharField(primary_key=True, max_length=36)
        type = CharField(max_length=30)
        status = CharField(max_length=30, index=True)
        owner = CharField(max_length=255, null=True, index=True)
        image_id = CharField(max_length=36, null=True, index=True)
        user_id = CharField(max_length=255, null=True)
        request_id = CharField(max_length=255, null=True)
        input = TextField(null=True)
        result = TextField(null=True)
        message = TextField(default="")
        created_at = DateTimeField()
        updated_at = DateTimeField()
        expires_at = DateTimeField(null=True, index=True)

        class Meta:
            database = migrator.database

    return [Operation(migrator, lambda _migrator: migrator.database.create_tables([Task]))]


STEPS: tuple[Step, ...] = (
    Step(2, "image.upload_state: what an unfinished upload would leave in its store", add_upload_state),
    Step(3, "image.partial_*: the kept bytes of an interrupted upload", add_partial_upload),
    Step(4, "imagelocation: several copies per image; image.upload_*/partial_* renamed attempt*/kept_*",
         add_locations),
    Step(5, "task: the records of asynchronous tasks", add_task_table),
    Step(6, "metadef*: metadata definition namespaces, objects, properties, tags, resource types",
         add_metadefs),
)


class SchemaError(RuntimeError):
    """The database's schema is not the one this code runs on."""


class SchemaVersion(Model):
    """A version the database reached, and when."""

    version = IntegerField(primary_key=True)
    description = CharField(max_length=255)
    applied_at = DateTimeField()

    class Meta:
        database = database
        table_name = VERSION_TABLE


def latest_version(steps: Sequence[Step] = STEPS) -> int:
    """The version this code needs: the last step's, or 1."""
    return steps[-1].version if steps else 1


def current_version() -> int | None:
    """The database's schema version; None when it has no imagedata tables at all."""
    tables = set(database.get_tables())
    if VERSION_TABLE in tables:
        row = SchemaVersion.select(SchemaVersion.version).order_by(SchemaVersion.version.desc()).first()
        if row is not None:
            return row.version
    return _unversioned_version() if MARKER_TABLE in tables else None


def _unversioned_version() -> int:
    """The version of a database made by create_tables() before versions were recorded:
    1, or 2 for one made while the model already had image.upload_state."""
    columns = {column.name for column in database.get_columns(MARKER_TABLE)}
    return 2 if "upload_state" in columns else 1


def _too_new(found: int, wanted: int) -> SchemaError:
    return SchemaError(f"the database schema is at version {found}, newer than this imagedata knows "
                       f"({wanted}): run the newer imagedata that upgraded it")


def check_schema(steps: Sequence[Step] = STEPS) -> int:
    """The version, if it is exactly the one this code needs; SchemaError otherwise."""
    wanted = latest_version(steps)
    found = current_version()
    if found is None:
        raise SchemaError("the database has no imagedata tables: run `imagedata db-sync`")
    if found < wanted:
        raise SchemaError(f"the database schema is at version {found} and this imagedata needs "
                          f"version {wanted}: back up the database, then run `imagedata db-sync`")
    if found > wanted:
        raise _too_new(found, wanted)
    return found


def sync_schema(steps: Sequence[Step] = STEPS) -> tuple[int | None, int]:
    """Create or upgrade the schema to the latest version; returns (version before, after)."""
    for expected, step in enumerate(steps, start=2):
        if step.version != expected:
            raise ValueError(f"migration step {step.description!r} has version {step.version}, not {expected}")
    wanted = latest_version(steps)
    sqlite = isinstance(database.obj, SqliteDatabase)
    with database.connection_context():
        foreign_keys = sqlite and bool(database.pragma("foreign_keys"))
        if foreign_keys:
            database.pragma("foreign_keys", 0)  # possible only outside a transaction
        try:
            with write_transaction():
                _lock()
                before = current_version()
                if before is None:
                    database.create_tables(ALL_MODELS + (SchemaVersion,))
                    _record(wanted, "schema created")
                    log.info("database schema created at version %d", wanted)
                elif before > wanted:
                    raise _too_new(before, wanted)
                else:
                    _upgrade(steps, before, sqlite)
            return before, wanted
        finally:
            if foreign_keys:
                database.pragma("foreign_keys", 1)


def _lock() -> None:
    """Serialise migrations across processes and hosts (SQLite: the write lock is already held)."""
    if isinstance(database.obj, PostgresqlDatabase):
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))


def _upgrade(steps: Sequence[Step], before: int, sqlite: bool) -> None:
    """Adopt an unversioned database, then run the steps it has not had, in order."""
    if VERSION_TABLE not in database.get_tables():
        database.create_tables([SchemaVersion])
        _record(before, f"unversioned schema adopted as version {before}")
    pending = [step for step in steps if step.version > before]
    migrator = SchemaMigrator.from_database(database)
    for step in pending:
        log.info("database schema: version %d: %s", step.version, step.description)
        for operation in step.operations(migrator):
            operation.run()
        _record(step.version, step.description)
    if sqlite and pending:
        broken = database.execute_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise SchemaError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")


def _record(version: int, description: str) -> None:
    SchemaVersion.insert(version=version, description=description[:255], applied_at=utcnow()).execute()
