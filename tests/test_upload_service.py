"""The upload state machine, driven through the service layer without Flask."""
import hashlib
import io
import os

import pytest

from imagedata.config import load_settings
from imagedata.db import close_pool, database, init_database
from imagedata.errors import BadRequest, Gone, InvalidImageState, StoreUnavailable, TooLarge
from imagedata.models import Image, ImageLocation
from imagedata.policy import Caller, Policy
from imagedata.service import Services, images, upload
from imagedata.errors import ClientAborted
from imagedata.service import lifecycle
from imagedata.stores import build_registry, prepare_stores
from tests.conftest import prepare_database

OWNER = Caller.with_roles("u1", "p1", ["member"])


@pytest.fixture
def svc(tmp_path, db_url):
    settings = load_settings({
        "IMAGEDATA_DATA_DIR": str(tmp_path),
        "IMAGEDATA_DATABASE_URL": db_url,
        "IMAGEDATA_STORES": f"local=file://{tmp_path}/local,slow=file://{tmp_path}/slow",
        "IMAGEDATA_IMAGE_SIZE_CAP": "1000",
    })
    os.makedirs(tmp_path / "data", exist_ok=True)  # the SQLite file's folder
    init_database(settings.database_url)
    prepare_database(settings.database_url)
    database.connect(reuse_if_open=True)
    stores = build_registry(settings)
    prepare_stores(stores)
    yield Services(settings, Policy(), stores)
    close_pool()


def new_image(svc, **fields):
    base = {"disk_format": "raw", "container_format": "bare", **fields}
    return images.create_image(svc, OWNER, base, {}).id


def request(image_id, data: bytes, **kw):
    kw.setdefault("content_length", len(data))
    return upload.UploadRequest(image_id=image_id, stream=io.BytesIO(data), **kw)


def copy_of(image_id):
    """The one copy of an image's data."""
    (copy,) = ImageLocation.select().where(ImageLocation.image == image_id)
    return copy


def leftovers(tmp_path):
    """Every file under the two stores' folders, the import staging folder inside them included
    (the folders themselves are made at startup and are not leftovers)."""
    return sorted(str(path.relative_to(tmp_path / d)) for d in ("local", "slow")
                  for path in (tmp_path / d).rglob("*") if not path.is_dir())


def assert_queued(image_id, tmp_path):
    image = Image.get_by_id(image_id)
    assert (image.status, image.size, image.checksum, image.attempt, image.reserved_bytes) == (
        "queued", None, None, None, 0)
    assert leftovers(tmp_path) == []


def test_success_records_hashes_and_store(svc, tmp_path):
    image_id = new_image(svc)
    upload.upload_image_data(svc, OWNER, request(image_id, b"hello", store_id="slow"))
    image, copy = Image.get_by_id(image_id), copy_of(image_id)
    assert (image.status, image.size, copy.store, copy.size, copy.status) == ("active", 5, "slow", 5, "active")
    assert image.checksum == hashlib.md5(b"hello").hexdigest()
    assert image.os_hash_value == hashlib.sha512(b"hello").hexdigest()
    assert os.listdir(tmp_path / "slow") == [f"{image_id}.{copy.attempt}"]


def test_second_upload_is_409_and_changes_nothing(svc):
    image_id = new_image(svc)
    upload.upload_image_data(svc, OWNER, request(image_id, b"first"))
    with pytest.raises(InvalidImageState):
        upload.upload_image_data(svc, OWNER, request(image_id, b"second"))
    assert Image.get_by_id(image_id).checksum == hashlib.md5(b"first").hexdigest()


@pytest.mark.parametrize("kwargs,error", [
    (dict(data=b"abc", image_size=4), BadRequest),  # fewer bytes than declared
    (dict(data=b"abcd", image_size=2), BadRequest),  # more bytes than declared
    (dict(data=b"x" * 1001, content_length=None), TooLarge),  # chunked over the cap
    (dict(data=b"x" * 1001), TooLarge),  # declared over the cap
    (dict(data=b"abc", image_size=3, content_length=4), BadRequest),  # headers disagree
])
def test_failures_leave_the_image_queued_and_nothing_on_disk(svc, tmp_path, kwargs, error):
    image_id = new_image(svc)
    kwargs = dict(kwargs)  # the table is shared by every backend's run
    data = kwargs.pop("data")
    with pytest.raises(error):
        upload.upload_image_data(svc, OWNER, request(image_id, data, **kwargs))
    assert_queued(image_id, tmp_path)
    upload.upload_image_data(svc, OWNER, request(image_id, b"retry"))
    assert Image.get_by_id(image_id).status == "active"


def test_exactly_the_cap_is_accepted(svc):
    image_id = new_image(svc)
    upload.upload_image_data(svc, OWNER, request(image_id, b"x" * 1000, content_length=None))
    assert Image.get_by_id(image_id).size == 1000


class Truncated(io.BytesIO):
    """A body whose sender goes away after a few bytes."""

    def readinto(self, view):
        got = super().readinto(view[:2])
        if not got:
            raise ConnectionResetError("peer went away")
        return got


def test_client_abort_keeps_what_arrived_for_a_resume(svc, tmp_path):
    image_id = new_image(svc)
    req = upload.UploadRequest(image_id=image_id, stream=Truncated(b"abcdef"), content_length=100)
    with pytest.raises(ClientAborted):
        upload.upload_image_data(svc, OWNER, req)
    image = Image.get_by_id(image_id)
    assert (image.status, image.kept_size, image.kept_total, image.size) == ("queued", 6, 100, None)
    assert leftovers(tmp_path) == [image.attempt_state]
    rest = upload.UploadRequest(image_id=image_id, stream=io.BytesIO(b"g" * 94), content_length=94,
                                content_range="bytes 6-99/100")
    upload.upload_image_data(svc, OWNER, rest)
    image = Image.get_by_id(image_id)
    assert image.status == "active" and image.checksum == hashlib.md5(b"abcdef" + b"g" * 94).hexdigest()
    assert (image.kept_size, image.reserved_bytes) == (None, 0)
    assert leftovers(tmp_path) == [f"{image_id}.{copy_of(image_id).attempt}"]


def test_client_abort_with_resume_off_is_cleaned_up(svc, tmp_path):
    svc.settings = svc.settings.__class__(**{**svc.settings.__dict__, "resume_seconds": 0})
    image_id = new_image(svc)
    req = upload.UploadRequest(image_id=image_id, stream=Truncated(b"abcdef"), content_length=100)
    with pytest.raises(ClientAborted):
        upload.upload_image_data(svc, OWNER, req)
    assert_queued(image_id, tmp_path)


def test_a_chunked_abort_without_a_declared_size_keeps_nothing(svc, tmp_path):
    image_id = new_image(svc)
    req = upload.UploadRequest(image_id=image_id, stream=Truncated(b"abcdef"), content_length=None)
    with pytest.raises(ClientAborted):
        upload.upload_image_data(svc, OWNER, req)
    assert_queued(image_id, tmp_path)


class DeletingStream(io.BytesIO):
    """Deletes the image (as another request would) while its data is being read."""

    def __init__(self, svc, image_id, data):
        super().__init__(data)
        self.svc, self.image_id, self.done = svc, image_id, False

    def readinto(self, view):
        if not self.done and self.tell() > 0:
            self.done = True
            images.delete_image(self.svc, OWNER, self.image_id)
        return super().readinto(view[:10])


def test_delete_during_upload_is_410_and_leaves_nothing(svc, tmp_path):
    image_id = new_image(svc)
    svc.settings = svc.settings.__class__(**{**svc.settings.__dict__, "upload_lease_seconds": 2})
    req = upload.UploadRequest(image_id=image_id, stream=DeletingStream(svc, image_id, b"y" * 100),
                               content_length=100)
    with pytest.raises(Gone):
        upload.upload_image_data(svc, OWNER, req)
    row = Image.get_by_id(image_id)
    assert row.deleted and row.status == "deleted" and row.reserved_bytes == 0
    assert leftovers(tmp_path) == []


def test_unknown_store_is_400_before_the_image_lookup(svc):
    with pytest.raises(BadRequest):
        upload.upload_image_data(svc, OWNER, request("00000000-0000-0000-0000-000000000000", b"x",
                                                     store_id="nope"))


def test_missing_store_directory_is_503_and_queued(svc, tmp_path):
    image_id = new_image(svc)
    os.rmdir(tmp_path / "slow")
    with pytest.raises(StoreUnavailable.__mro__[1]):
        upload.upload_image_data(svc, OWNER, request(image_id, b"abc", store_id="slow"))
    assert Image.get_by_id(image_id).status == "queued"


def test_recovery_resets_a_dead_lease_and_removes_its_file(svc, tmp_path):
    image_id = new_image(svc)
    att = lifecycle.take(svc, Image.get_by_id(image_id), svc.stores.get("local"), None, resume=False)
    writer = upload.open_writer(att)  # records what a crash would leave behind
    writer.write(memoryview(b"half"))
    # The uploading process dies: give the lease a pid that does not exist on this host.
    Image.update(attempt_pid=2 ** 22 + 12345).where(Image.id == image_id).execute()
    assert lifecycle.recover(svc) == [image_id]
    assert_queued(image_id, tmp_path)


def test_recovery_keeps_a_live_lease(svc):
    image_id = new_image(svc)
    lifecycle.take(svc, Image.get_by_id(image_id), svc.stores.default, None, resume=False)
    assert lifecycle.recover(svc) == []
    assert Image.get_by_id(image_id).status == "saving"


def test_a_lease_of_another_host_is_judged_by_its_heartbeat_only(svc):
    from imagedata.service.lifecycle import lease_is_dead

    image_id = new_image(svc)
    lifecycle.take(svc, Image.get_by_id(image_id), svc.stores.default, None, resume=False)
    dead_pid = 2 ** 22 + 12345
    Image.update(attempt_host="another-host:boot", attempt_pid=dead_pid).where(Image.id == image_id).execute()
    image = Image.get_by_id(image_id)
    assert not lease_is_dead(image, 60, svc.settings.host_id)  # its pid means nothing here
    assert lifecycle.recover(svc) == []
    Image.update(attempt_host=svc.settings.host_id).where(Image.id == image_id).execute()
    assert lease_is_dead(Image.get_by_id(image_id), 60, svc.settings.host_id)  # ours, and gone


def test_recovery_removes_a_writer_that_died_before_its_state_was_recorded(svc, tmp_path):
    image_id = new_image(svc)
    att = lifecycle.take(svc, Image.get_by_id(image_id), svc.stores.get("local"), None, resume=False)
    writer = att.store.open_writer(image_id, att.attempt, None)  # killed before its state is recorded
    writer.write(memoryview(b"half"))
    Image.update(attempt_pid=2 ** 22 + 12345).where(Image.id == image_id).execute()
    assert lifecycle.recover(svc) == [image_id]
    assert_queued(image_id, tmp_path)
