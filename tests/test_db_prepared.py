"""Hot queries with cached SQL (``db.prepared``): their rows are the rows peewee itself builds."""
import datetime

import pytest

from imagedata.db import database, prepared
from imagedata.models import Image, ImageProperty, ImageTag, Token
from imagedata.service.images import attach_extras, find_image


def _stored_image(**fields):
    image = Image.create(id="6f2d3c1e-8a41-4c57-9b0e-2a5d7e9f1c34", name="p", status="active",
                         visibility="shared", protected=True, size=1 << 40, min_ram=7, owner="p1",
                         deleted_at=None, attempt_state='{"part": "x"}', **fields)
    ImageTag.create(image=image, value="b")
    ImageTag.create(image=image, value="a")
    ImageProperty.create(image=image, name="os_distro", value="debian")
    return image


def test_a_prepared_row_equals_peewees_own_and_is_clean(app):
    with database.connection_context():
        _stored_image()
        found = find_image("6F2D3C1E-8A41-4C57-9B0E-2A5D7E9F1C34")  # ids match case-insensitively
        reference = Image.get_by_id("6f2d3c1e-8a41-4c57-9b0e-2a5d7e9f1c34")
        assert found.__data__ == reference.__data__
        assert isinstance(found.created_at, datetime.datetime) and found.protected is True
        assert found.size == 1 << 40 and found.deleted_at is None
        assert not found.is_dirty()
        # Saving a fetched row writes only what changed, like any peewee instance.
        found.name = "renamed"
        assert found.dirty_fields == [Image.name]
        found.save()
        assert Image.get_by_id(found.id).name == "renamed"
        assert Image.get_by_id(found.id).size == 1 << 40


def test_foreign_keys_and_several_rows(app):
    with database.connection_context():
        image = _stored_image()
        rows = prepared(ImageTag, "test-tags", lambda image_id: ImageTag.select().where(
            ImageTag.image == image_id).order_by(ImageTag.id), image_id=image.id)
        assert [(tag.image_id, tag.value) for tag in rows] == [(image.id, "b"), (image.id, "a")]
        (shown,) = attach_extras([find_image(image.id)])
        assert shown.tag_list == ["b", "a"] and shown.extra_properties == {"os_distro": "debian"}


def test_no_row_and_a_deleted_row(app):
    with database.connection_context():
        assert find_image("6f2d3c1e-8a41-4c57-9b0e-2a5d7e9f1c34") is None
        _stored_image(deleted=True)
        assert find_image("6f2d3c1e-8a41-4c57-9b0e-2a5d7e9f1c34") is None


def test_a_query_that_selects_more_than_model_columns_is_refused(app):
    from peewee import fn

    with database.connection_context():
        with pytest.raises(ValueError, match="not a column"):
            prepared(Token, "test-count", lambda project: Token.select(
                fn.COUNT(Token.id).alias("n")).where(Token.project_id == project), project="p1")

