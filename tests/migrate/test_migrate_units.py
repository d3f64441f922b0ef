"""The migration's decisions without servers: endpoints, Glance records, plans, verification."""
from __future__ import annotations

import datetime

import pytest

from imagedata.models import Image
from imagedata.service.migrate import plan as plans
from imagedata.service.migrate.adopt import Written
from imagedata.service.migrate.catalog import image_endpoint
from imagedata.service.migrate.record import LocalImage, from_glance, parse_time
from imagedata.service.migrate.source import SourceError, image_api_root
from imagedata.service.migrate.transfer import mismatch

ID = "5e1f0a9e-3b9c-4f0e-9d43-2b8a5a6f4c11"
GLANCE = {"id": ID, "name": "debian", "status": "active", "visibility": "shared", "protected": False,
          "os_hidden": False, "checksum": "a" * 32, "os_hash_algo": "sha512", "os_hash_value": "b" * 128,
          "owner": "pa", "size": 10, "virtual_size": 10, "container_format": "bare", "disk_format": "raw",
          "created_at": "2024-01-02T03:04:05Z", "updated_at": "2024-01-03T00:00:00Z", "tags": ["x"],
          "min_ram": 0, "min_disk": 0, "self": f"/v2/images/{ID}", "file": f"/v2/images/{ID}/file",
          "schema": "/v2/schemas/image", "stores": "fast", "os_distro": "debian",
          "os_glance_importing_to_stores": ""}
MEMBERS = [{"member_id": "pb", "status": "accepted", "created_at": "2024-01-02T03:04:06Z",
            "updated_at": "2024-01-02T03:04:07Z", "image_id": ID}]


@pytest.mark.parametrize("given, root", [
    ("http://127.0.0.1:9292", "http://127.0.0.1:9292"),
    ("http://127.0.0.1:9292/", "http://127.0.0.1:9292"),
    ("http://127.0.0.1:9292/v2", "http://127.0.0.1:9292"),
    ("https://cloud.example/image/v2/", "https://cloud.example/image"),
])
def test_image_api_root_accepts_a_trailing_v2(given, root):
    assert image_api_root(given) == root


@pytest.mark.parametrize("given", ["ftp://x/", "glance:9292", ""])
def test_image_api_root_refuses_what_is_not_http(given):
    with pytest.raises(SourceError):
        image_api_root(given)


class Session:
    """What keystoneauth's session offers the catalog lookup."""

    def __init__(self, url):
        self.url, self.asked = url, []

    def get_endpoint(self, **kwargs):
        self.asked.append(kwargs)
        return self.url


def test_the_catalog_lookup_asks_for_the_image_service():
    session = Session("http://glance:9292/v2")
    assert image_endpoint(session, "internal", "RegionTwo") == "http://glance:9292/v2"
    assert session.asked == [{"service_type": "image", "interface": "internal", "region_name": "RegionTwo"}]
    assert image_endpoint(session) and session.asked[-1]["interface"] == "public"
    with pytest.raises(SourceError, match="no public image endpoint"):
        image_endpoint(Session(None))


def test_a_glance_record_keeps_what_is_carried_and_drops_glances_own_bookkeeping():
    record = from_glance(GLANCE, MEMBERS)
    assert record.properties == {"os_distro": "debian"} and record.dropped == ["os_glance_importing_to_stores"]
    assert record.base["created_at"] == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert record.members == {"pb": {"status": "accepted", "created_at": parse_time("2024-01-02T03:04:06Z"),
                                     "updated_at": parse_time("2024-01-02T03:04:07Z")}}
    assert record.has_data and record.data["checksum"] == "a" * 32


def local_of(body=GLANCE, members=MEMBERS, **row) -> LocalImage:
    """The imagedata side as a migration would have written it, with ``row`` changes."""
    record = from_glance(body, members)
    values = {**record.base, **record.data, "id": record.id, "status": record.status, "deleted": False,
              "kept_size": None, **row}
    return LocalImage(Image(**values), list(record.tags), dict(record.properties),
                      {m: info["status"] for m, info in record.members.items()})


@pytest.mark.parametrize("glance_changes, row, allow, action", [
    ({}, None, False, plans.CREATE),
    ({"status": "killed"}, None, False, plans.SKIP),
    ({"status": "importing"}, {}, False, plans.SKIP),
    ({}, {}, False, plans.UNCHANGED),
    ({}, {"deleted": True}, False, plans.CONFLICT),
    ({}, {"status": "saving"}, False, plans.CONFLICT),
    ({}, {"checksum": "c" * 32}, False, plans.CONFLICT),  # other data: never overwritten
    ({}, {"checksum": "c" * 32}, True, plans.CONFLICT),
    ({"name": "renamed"}, {}, False, plans.CONFLICT),  # metadata changed on Glance
    ({"name": "renamed"}, {}, True, plans.UPDATE),
    ({"status": "deactivated"}, {}, True, plans.UPDATE),
    ({}, {"status": "queued", "checksum": None, "size": None}, False, plans.CONTINUE),  # cut midway
    ({}, {"status": "queued", "kept_size": 5}, False, plans.CONFLICT),  # an upload keeps resumable bytes
    ({"status": "queued"}, {"status": "queued"}, False, plans.UNCHANGED),
    ({"status": "queued"}, {}, False, plans.CONFLICT),  # data here, none on Glance
])
def test_plan(glance_changes, row, allow, action):
    record = from_glance({**GLANCE, **glance_changes}, MEMBERS)
    local = None if row is None else local_of(**row)
    assert plans.plan_image(record, local, allow).action == action


def test_a_changed_member_status_is_a_metadata_change():
    record = from_glance(GLANCE, [{**MEMBERS[0], "status": "rejected"}])
    planned = plans.plan_image(record, local_of(), False)
    assert planned.action == plans.CONFLICT and "member pb" in planned.reason


@pytest.mark.parametrize("written, problem", [
    (Written(10, "a" * 32, "b" * 128), None),
    (Written(11, "a" * 32, "b" * 128), "11 bytes, recorded size 10"),
    (Written(10, "f" * 32, "b" * 128), "md5"),
    (Written(10, "a" * 32, "f" * 128), "sha512 differs"),
])
def test_mismatch_names_what_differs(written, problem):
    found = mismatch(from_glance(GLANCE), written)
    assert found is None if problem is None else problem in found
