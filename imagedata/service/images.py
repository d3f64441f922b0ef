"""Image records: create, show, update, delete, deactivate, tags."""
from __future__ import annotations

import logging
import uuid

from peewee import IntegrityError

from imagedata.db import prepared, write_transaction
from imagedata.errors import BadRequest, Conflict, Forbidden, ImageNotFound, NotFound, TooLarge
from imagedata.models import Image, ImageMember, ImageProperty, ImageTag, utcnow
from imagedata.policy import Caller
from imagedata.schemas import MAX_TAGS
from imagedata.service import Services, lifecycle, locations, patch, quotas
from imagedata.stores.base import IMAGE_ID_RE

log = logging.getLogger(__name__)

MUTABLE_BASE = ("name", "visibility", "protected", "os_hidden", "disk_format", "container_format",
                "min_disk", "min_ram", "owner")


def attach_extras(images: list[Image]) -> list[Image]:
    """Load tags, extra properties and the stores holding a copy of ``images`` (three queries)."""
    by_id = {image.id: image for image in images}
    for image in images:
        image.tag_list = []
        image.extra_properties = {}
    if not by_id:
        return images
    for image_id, copies in locations.copies_by_image(by_id).items():
        by_id[image_id].store_ids = [copy.store for copy in copies if copy.status == "active"]
    if len(by_id) == 1:
        (image_id,) = by_id
        tags = prepared(ImageTag, "tags-of-one", lambda image_id: ImageTag.select().where(
            ImageTag.image == image_id).order_by(ImageTag.id), image_id=image_id)
        props = prepared(ImageProperty, "properties-of-one", lambda image_id: ImageProperty.select().where(
            ImageProperty.image == image_id), image_id=image_id)
    else:
        ids = list(by_id)
        tags = ImageTag.select().where(ImageTag.image.in_(ids)).order_by(ImageTag.id)
        props = ImageProperty.select().where(ImageProperty.image.in_(ids))
    for tag in tags:
        by_id[tag.image_id].tag_list.append(tag.value)
    for prop in props:
        by_id[prop.image_id].extra_properties[prop.name] = prop.value
    return images


def find_image(image_id: str) -> Image | None:
    """The live (not deleted) image with this id, or None. Never raises for odd ids."""
    if not isinstance(image_id, str) or not IMAGE_ID_RE.match(image_id.lower()):
        return None
    found = prepared(Image, "live-image", lambda image_id: Image.select().where(
        (Image.id == image_id) & (Image.deleted == False)), image_id=image_id.lower())  # noqa: E712
    return next(iter(found), None)


def member_status(image: Image, caller: Caller) -> str | None:
    """The caller project's membership status on ``image``, or None."""
    if caller.project_id is None or image.visibility != "shared" or image.owner == caller.project_id:
        return None
    rows = prepared(ImageMember, "membership", lambda image_id, project: ImageMember.select().where(
        (ImageMember.image == image_id) & (ImageMember.member == project)),
        image_id=image.id, project=caller.project_id)
    row = next(iter(rows), None)
    return row.status if row else None


def get_visible_image(svc: Services, caller: Caller, image_id: str, rule: str = "get_image") -> Image:
    """Load an image the caller may act on by ``rule``: 404 if invisible, 403 if only forbidden."""
    image = find_image(image_id)
    if image is None:
        raise ImageNotFound(image_id)
    status = member_status(image, caller)
    svc.policy.enforce(rule, caller, image, status)
    return image


def show_image(svc: Services, caller: Caller, image_id: str) -> Image:
    """The image with its tags and properties, for GET /v2/images/{id}."""
    return attach_extras([get_visible_image(svc, caller, image_id)])[0]


def create_image(svc: Services, caller: Caller, base: dict, extras: dict) -> Image:
    """Create a queued image owned by the caller's project (or, for admins, the given owner)."""
    svc.policy.enforce("add_image", caller)
    owner = base.pop("owner", caller.project_id) if "owner" in base else caller.project_id
    if owner != caller.project_id:
        svc.policy.enforce("set_owner", caller, message="You are not permitted to create images owned by another project.")
    _check_visibility_change(svc, caller, base.get("visibility"), owner)
    tags = base.pop("tags", [])
    image_id = (base.pop("id", None) or str(uuid.uuid4())).lower()
    now = utcnow()
    try:
        with write_transaction():
            if owner is not None:
                quotas.check_image_count(svc.settings, owner)
            Image.insert(id=image_id, owner=owner, created_at=now, updated_at=now, **base).execute()
            _write_tags(image_id, tags)
            _write_properties(image_id, extras)
    except IntegrityError:
        raise _taken_id(image_id) from None
    log.info("image %s created by project %s", image_id, caller.project_id)
    return attach_extras([Image.get_by_id(image_id)])[0]


def _taken_id(image_id: str) -> Conflict:
    """409 for an id in use; a deleted image's id says so (ids are never reused, yet GET says 404)."""
    row = Image.select(Image.deleted).where(Image.id == image_id).first()
    if row is not None and row.deleted:
        return Conflict(f"An image with identifier {image_id} existed and was deleted; image ids are never "
                        "reused: create the image without an id (one is chosen for it) or with a new one.")
    return Conflict(f"An image with identifier {image_id} already exists")


def _check_visibility_change(svc: Services, caller: Caller, visibility: str | None, owner) -> None:
    if visibility == "public":
        svc.policy.enforce("publicize_image", caller, message="You are not authorized to publicize images.")
    elif visibility == "community":
        fake = Image(id="", owner=owner, visibility="community")
        if not svc.policy.allows("communitize_image", caller, fake):
            raise Forbidden("You are not authorized to communitize images.")


def _write_tags(image_id: str, tags) -> None:
    for value in tags:
        ImageTag.insert(image=image_id, value=value).on_conflict_ignore().execute()


def _write_properties(image_id: str, extras: dict) -> None:
    for name, value in extras.items():
        ImageProperty.insert(image=image_id, name=name, value=value).execute()


def update_image(svc: Services, caller: Caller, image_id: str, media_type: str, body) -> Image:
    """Apply a JSON-patch document: base attributes, extra properties, tags."""
    ops = patch.normalise_ops(media_type, body)
    image = get_visible_image(svc, caller, image_id, "modify_image")
    attach_extras([image])
    changes, removed, tags = patch.apply_patch(image, ops)
    base = {k: v for k, v in changes.items() if k in MUTABLE_BASE}
    extras = {k: v for k, v in changes.items() if k not in MUTABLE_BASE}
    if "owner" in base and base["owner"] != image.owner:
        svc.policy.enforce("set_owner", caller, message="Owner can't be updated by non admin.")
    if "visibility" in base and base["visibility"] != image.visibility:
        _check_visibility_change(svc, caller, base["visibility"], base.get("owner", image.owner))
    for field in ("disk_format", "container_format"):
        if field in base and base[field] != getattr(image, field) and image.status != "queued":
            raise Forbidden(f"Attribute {field} can be only replaced for a queued image.")
    with write_transaction():
        base["updated_at"] = utcnow()
        Image.update(**base).where((Image.id == image.id) & (Image.deleted == False)).execute()  # noqa: E712
        if removed:
            ImageProperty.delete().where((ImageProperty.image == image.id) & ImageProperty.name.in_(list(removed))).execute()
        for name, value in extras.items():
            if name in image.extra_properties:
                ImageProperty.update(value=value).where((ImageProperty.image == image.id) & (ImageProperty.name == name)).execute()
            else:
                ImageProperty.insert(image=image.id, name=name, value=value).execute()
        if tags is not None:
            ImageTag.delete().where(ImageTag.image == image.id).execute()
            _write_tags(image.id, tags)
    return show_image(svc, caller, image.id)


def delete_image(svc: Services, caller: Caller, image_id: str) -> None:
    """Soft-delete the record (the id is never reused), then remove its data."""
    image = get_visible_image(svc, caller, image_id, "delete_image")
    if image.protected:
        raise Forbidden(f"Image {image.id} is protected and cannot be deleted.")
    lifecycle.retire(svc, image)


def set_active(svc: Services, caller: Caller, image_id: str, active: bool) -> None:
    """Deactivate (active -> deactivated) or reactivate; repeating either is a no-op."""
    rule = "reactivate" if active else "deactivate"
    image = get_visible_image(svc, caller, image_id, rule)
    source, target = ("deactivated", "active") if active else ("active", "deactivated")
    if image.status == target:
        return
    if image.status != source:
        verb = "reactivate" if active else "deactivate"
        raise Forbidden(f"Not allowed to {verb} image in status '{image.status}'")
    if not lifecycle.set_data_status(image.id, source, target):
        raise Conflict(f"Image {image.id} changed state meanwhile; try again.")


def add_tag(svc: Services, caller: Caller, image_id: str, tag: str) -> None:
    """Add one tag (idempotent)."""
    if not tag or len(tag) > 255:
        raise BadRequest("Tags must be 1 to 255 characters long.")
    image = get_visible_image(svc, caller, image_id, "modify_image")
    with write_transaction():
        count = ImageTag.select().where(ImageTag.image == image.id).count()
        exists = ImageTag.select().where((ImageTag.image == image.id) & (ImageTag.value == tag)).exists()
        if not exists and count >= MAX_TAGS:
            raise TooLarge(f"Maximum number of tags ({MAX_TAGS}) exceeded.")
        _write_tags(image.id, [tag])
        Image.update(updated_at=utcnow()).where(Image.id == image.id).execute()


def delete_tag(svc: Services, caller: Caller, image_id: str, tag: str) -> None:
    """Remove one tag; 404 when the image does not carry it."""
    image = get_visible_image(svc, caller, image_id, "modify_image")
    rows = ImageTag.delete().where((ImageTag.image == image.id) & (ImageTag.value == tag)).execute()
    if not rows:
        raise NotFound(f"Tag {tag} not found on image {image.id}")
    Image.update(updated_at=utcnow()).where(Image.id == image.id).execute()
