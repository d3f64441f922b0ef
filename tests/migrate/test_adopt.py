"""The migration's writes (service/migrate/adopt.py) on SQLite and PostgreSQL, without Glance.

What a port of adopt.py onto another data model must keep: a record created queued with Glance's
metadata and members; bytes that verify make the image active (or deactivated) with Glance's
record and one copy in the chosen store; bytes that do not are dropped, the image stays queued
and the reason is returned; a failure midway leaves the image queued and nothing in the store;
quotas are not enforced, but reported.
"""
from __future__ import annotations

import hashlib

import pytest

from imagedata.db import database
from imagedata.models import Image, ImageMember
from imagedata.service import locations
from imagedata.service.migrate.adopt import AdoptConflict, create_record, update_metadata, write_data
from imagedata.service.migrate.record import from_glance, load_local
from imagedata.service.migrate.run import Outcome, choose_store, over_quota
from imagedata.service.migrate.transfer import mismatch
from imagedata.service.quotas import set_quota
from tests.conftest import store_files
from tests.migrate.test_migrate_units import GLANCE, MEMBERS

DATA = b"0123456789"


def glance_record(**changes):
    body = {**GLANCE, "checksum": hashlib.md5(DATA).hexdigest(), "os_hash_value": hashlib.sha512(DATA).hexdigest(),
            **changes}
    return from_glance(body, MEMBERS)


@pytest.fixture
def svc(app):
    with database.connection_context():
        yield app.extensions["imagedata"]


def test_a_verified_image_becomes_active_with_glances_record(svc, tmp_path):
    record = glance_record()
    create_record(record)
    assert load_local(record.id).row.status == "queued"
    written = write_data(svc, record, svc.stores.default, [DATA[:4], DATA[4:]], lambda w: mismatch(record, w))
    assert written.problem is None
    local = load_local(record.id)
    assert (local.row.status, local.row.size, local.row.checksum, local.row.attempt) == (
        "active", 10, record.data["checksum"], None)
    assert [(c.store, c.size, c.status) for c in locations.copies_of(record.id)] == [
        (svc.stores.default.store_id, 10, "active")]
    assert local.row.created_at == record.base["created_at"] and local.row.updated_at == record.updated_at
    assert local.tags == ["x"] and local.properties == {"os_distro": "debian"} and local.members == {"pb": "accepted"}
    member = ImageMember.get(ImageMember.image == record.id)
    assert member.created_at == record.members["pb"]["created_at"]
    assert len(store_files(tmp_path)) == 1


def test_a_deactivated_image_stays_deactivated(svc):
    record = glance_record(status="deactivated")
    create_record(record)
    write_data(svc, record, svc.stores.default, [DATA], lambda w: mismatch(record, w))
    assert Image.get_by_id(record.id).status == "deactivated"


def test_bytes_that_do_not_verify_leave_the_image_queued_and_say_why(svc, tmp_path):
    record = glance_record()
    create_record(record)
    written = write_data(svc, record, svc.stores.default, [b"x" * 10], lambda w: mismatch(record, w))
    assert "md5" in written.problem and "do not match" in written.problem
    row = Image.get_by_id(record.id)
    assert (row.status, row.size, row.checksum, row.attempt, row.attempt_state) == ("queued", None, None, None, None)
    assert locations.copies_of(record.id) == [] and store_files(tmp_path) == []


def test_a_failure_midway_leaves_the_image_queued_and_the_store_empty(svc, tmp_path):
    record = glance_record()
    create_record(record)

    def broken():
        yield DATA[:5]
        raise OSError("connection lost")

    with pytest.raises(OSError):
        write_data(svc, record, svc.stores.default, broken(), lambda w: None)
    row = Image.get_by_id(record.id)
    assert (row.status, row.attempt, row.attempt_store, row.reserved_bytes) == ("queued", None, None, 0)
    assert locations.copies_of(record.id) == [] and store_files(tmp_path) == []


def test_records_are_never_created_twice_and_data_never_written_twice(svc):
    record = glance_record()
    create_record(record)
    with pytest.raises(AdoptConflict):
        create_record(record)
    write_data(svc, record, svc.stores.default, [DATA], lambda w: None)
    with pytest.raises(AdoptConflict):
        write_data(svc, record, svc.stores.default, [DATA], lambda w: None)


def test_update_metadata_brings_glances_changes(svc):
    create_record(glance_record())
    later = from_glance({**GLANCE, "name": "renamed", "tags": ["y"], "hw_rng": "true"},
                        [{**MEMBERS[0], "status": "rejected"}, {**MEMBERS[0], "member_id": "pc", "status": "pending"}])
    update_metadata(later)
    local = load_local(later.id)
    assert local.row.name == "renamed" and local.tags == ["y"]
    assert local.properties == {"os_distro": "debian", "hw_rng": "true"}
    assert local.members == {"pb": "rejected", "pc": "pending"}


def test_quotas_are_not_enforced_but_reported(svc):
    set_quota("pa", image_size_total=5)
    record = glance_record()
    create_record(record)
    write_data(svc, record, svc.stores.default, [DATA], lambda w: None)
    outcome = Outcome(record.id, "debian", "pa", "active", "create", "migrated")
    assert over_quota(svc, [outcome]) == [{"project": "pa", "limit": "image_size_total", "usage": 10, "allowed": 5}]


def test_checksums_glance_never_recorded_are_filled_in(svc):
    record = glance_record(checksum=None, os_hash_algo=None, os_hash_value=None)
    create_record(record)
    write_data(svc, record, svc.stores.default, [DATA], lambda w: mismatch(record, w))
    row = Image.get_by_id(record.id)
    assert (row.checksum, row.os_hash_algo, row.os_hash_value) == (
        hashlib.md5(DATA).hexdigest(), "sha512", hashlib.sha512(DATA).hexdigest())
    from imagedata.service.migrate.plan import UNCHANGED, plan_image

    assert plan_image(record, load_local(record.id), False).action == UNCHANGED


def test_the_staging_store_is_never_a_migrations_target(svc):
    assert choose_store(svc, None) is svc.stores.default
    assert svc.stores.get("os_glance_staging_store") is svc.stores.staging is not None
    with pytest.raises(ValueError, match="no store 'os_glance_staging_store' \\(configured: local"):
        choose_store(svc, "os_glance_staging_store")


def test_update_metadata_deactivates_and_reactivates_as_glance_did(svc):
    record = glance_record()
    create_record(record)
    write_data(svc, record, svc.stores.default, [DATA], lambda w: mismatch(record, w))
    update_metadata(glance_record(status="deactivated"), "deactivated")
    assert Image.get_by_id(record.id).status == "deactivated"
    update_metadata(glance_record(), "active")
    row = Image.get_by_id(record.id)
    assert (row.status, row.checksum, row.updated_at) == ("active", record.data["checksum"], record.updated_at)
    assert len(locations.copies_of(record.id)) == 1
