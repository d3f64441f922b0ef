"""Image members: sharing a `shared` image with other projects, who accept or reject."""
from __future__ import annotations

from peewee import IntegrityError

from imagedata.errors import Conflict, Forbidden, NotFound, TooLarge
from imagedata.models import ImageMember, utcnow
from imagedata.policy import Caller
from imagedata.service import Services
from imagedata.service.images import get_visible_image, member_status

MAX_MEMBERS = 128


def list_members(svc: Services, caller: Caller, image_id: str) -> list[ImageMember]:
    """The owner (or an admin) sees every member; a member sees only itself."""
    image = get_visible_image(svc, caller, image_id, "get_members")
    if image.visibility != "shared":  # Glance: 403, even for an admin, not an empty list
        raise Forbidden(f"Not allowed to list members for image {image.id}.")
    query = ImageMember.select().where(ImageMember.image == image.id).order_by(ImageMember.created_at)
    if not caller.is_admin and image.owner != caller.project_id:
        query = query.where(ImageMember.member == caller.project_id)
    return list(query)


def add_member(svc: Services, caller: Caller, image_id: str, member: str) -> ImageMember:
    """Share a `shared` image with ``member`` (status pending)."""
    image = get_visible_image(svc, caller, image_id, "add_member")
    if image.visibility != "shared":
        raise Forbidden(f"Only shared images have members; image {image.id} is {image.visibility}.")
    if ImageMember.select().where(ImageMember.image == image.id).count() >= MAX_MEMBERS:
        raise TooLarge(f"Maximum number of members ({MAX_MEMBERS}) exceeded.")
    try:
        return ImageMember.create(image=image.id, member=member, status="pending")
    except IntegrityError:
        raise Conflict(f"Member {member} already associated with image {image.id}.") from None


def show_member(svc: Services, caller: Caller, image_id: str, member: str) -> ImageMember:
    """One membership, visible to the owner and to that member."""
    image = get_visible_image(svc, caller, image_id, "get_members")
    if image.visibility != "shared":  # Glance: 404 here, where the list is 403
        raise NotFound("Only shared images have members.")
    return _find(list_members(svc, caller, image_id), member, image_id)


def update_member(svc: Services, caller: Caller, image_id: str, member: str, status: str) -> ImageMember:
    """Only the member project itself accepts or rejects."""
    image = get_visible_image(svc, caller, image_id, "get_image")
    row = ImageMember.get_or_none((ImageMember.image == image.id) & (ImageMember.member == member))
    if row is None:
        raise NotFound(f"Member {member} not found on image {image.id}.")
    if caller.project_id != member or not svc.policy.allows("modify_member", caller, image,
                                                            member_status(image, caller)):
        raise Forbidden("Only the member itself may change its membership status.")
    ImageMember.update(status=status, updated_at=utcnow()).where(
        (ImageMember.image == image.id) & (ImageMember.member == member)).execute()
    return ImageMember.get((ImageMember.image == image.id) & (ImageMember.member == member))


def delete_member(svc: Services, caller: Caller, image_id: str, member: str) -> None:
    """The owner stops sharing with ``member``."""
    image = get_visible_image(svc, caller, image_id, "delete_member")
    rows = ImageMember.delete().where((ImageMember.image == image.id) & (ImageMember.member == member)).execute()
    if not rows:
        raise NotFound(f"Member {member} not found on image {image.id}.")


def _find(rows, member: str, image_id: str) -> ImageMember:
    for row in rows:
        if row.member == member:
            return row
    raise NotFound(f"Member {member} not found on image {image_id}.")
