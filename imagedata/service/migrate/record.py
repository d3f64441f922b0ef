"""A Glance image as data, the same image as imagedata holds it, and how the two differ."""
from __future__ import annotations

import dataclasses
import datetime

from imagedata.models import Image, ImageMember
from imagedata.service.images import attach_extras

# Glance's keys that are not additional properties (its base attributes and links).
GLANCE_KEYS = frozenset({
    "id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
    "os_hash_value", "owner", "size", "virtual_size", "container_format", "disk_format", "created_at",
    "updated_at", "tags", "min_ram", "min_disk", "self", "file", "schema", "direct_url", "locations", "stores"})
# Compared and carried as they are.
BASE_FIELDS = ("name", "visibility", "protected", "os_hidden", "disk_format", "container_format", "min_disk",
               "min_ram", "owner", "created_at")
DATA_FIELDS = ("size", "checksum", "os_hash_algo", "os_hash_value", "virtual_size")
WITH_DATA = ("active", "deactivated")


def parse_time(text: str | None) -> datetime.datetime | None:
    """Glance's ``2024-01-02T03:04:05Z`` as a naive UTC datetime (imagedata's precision: seconds)."""
    if not text:
        return None
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=0)


@dataclasses.dataclass
class GlanceImage:
    """What is carried over of one Glance image."""

    id: str
    status: str
    base: dict  # BASE_FIELDS, created_at as a datetime
    data: dict  # DATA_FIELDS
    updated_at: datetime.datetime | None
    tags: list[str]
    properties: dict[str, str]
    members: dict[str, dict] = dataclasses.field(default_factory=dict)  # member -> status, created_at, updated_at
    dropped: list[str] = dataclasses.field(default_factory=list)  # Glance's own properties, not carried

    @property
    def has_data(self) -> bool:
        """Whether Glance holds bytes for it (active or deactivated)."""
        return self.status in WITH_DATA

    @property
    def name(self) -> str | None:
        return self.base.get("name")

    @property
    def owner(self) -> str | None:
        return self.base.get("owner")


def from_glance(body: dict, members: list[dict] | None = None) -> GlanceImage:
    """A GlanceImage from Glance's image JSON and member list."""
    base = {name: body.get(name) for name in BASE_FIELDS}
    base["created_at"] = parse_time(body.get("created_at"))
    base["protected"] = bool(body.get("protected"))
    base["os_hidden"] = bool(body.get("os_hidden"))
    base["min_disk"] = body.get("min_disk") or 0
    base["min_ram"] = body.get("min_ram") or 0
    extras = {k: v for k, v in body.items() if k not in GLANCE_KEYS}
    # Glance: os_glance_* properties are its own bookkeeping (imports in flight), reserved on both sides.
    dropped = sorted(k for k in extras if k.startswith("os_glance"))
    properties = {k: v if isinstance(v, str) else str(v) for k, v in extras.items() if k not in dropped}
    return GlanceImage(
        id=body["id"].lower(), status=body.get("status") or "", base=base,
        data={name: body.get(name) for name in DATA_FIELDS}, updated_at=parse_time(body.get("updated_at")),
        tags=list(body.get("tags") or []), properties=properties,
        members=parse_members(members or []), dropped=dropped)


def parse_members(members: list[dict]) -> dict[str, dict]:
    """Glance's member list as {member: {status, created_at, updated_at}}."""
    return {m["member_id"]: {"status": m["status"], "created_at": parse_time(m.get("created_at")),
                             "updated_at": parse_time(m.get("updated_at"))} for m in members}


@dataclasses.dataclass
class LocalImage:
    """The imagedata side of one image: its row, tags, properties and members."""

    row: Image
    tags: list[str]
    properties: dict[str, str]
    members: dict[str, str]  # member -> status


def load_local(image_id: str) -> LocalImage | None:
    """The image with this id in imagedata, deleted or not (ids are never reused), or None."""
    row = Image.get_or_none(Image.id == image_id)
    if row is None:
        return None
    attach_extras([row])
    members = {m.member: m.status for m in ImageMember.select().where(ImageMember.image == image_id)}
    return LocalImage(row, row.tag_list, row.extra_properties, members)


def metadata_differences(glance: GlanceImage, local: LocalImage) -> list[str]:
    """The names of what differs besides the data: base fields, tags, properties, members, status."""
    found = [name for name in BASE_FIELDS if glance.base[name] != getattr(local.row, name)]
    if sorted(set(glance.tags)) != sorted(local.tags):
        found.append("tags")
    found += [f"property {name}" for name in sorted(set(glance.properties) | set(local.properties))
              if glance.properties.get(name) != local.properties.get(name)]
    found += [f"member {name}" for name in sorted(set(glance.members) | set(local.members))
              if (glance.members.get(name) or {}).get("status") != local.members.get(name)]
    if glance.has_data and local.row.status in WITH_DATA and glance.status != local.row.status:
        found.append("status")
    return found


def data_differences(glance: GlanceImage, local: LocalImage) -> list[str]:
    """The data fields Glance recorded (size, checksums, virtual size) that differ here."""
    return [name for name in DATA_FIELDS if glance.data[name] is not None and glance.data[name] != getattr(local.row, name)]
