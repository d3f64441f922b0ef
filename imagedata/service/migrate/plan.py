"""What to do with one image, from Glance's record and what imagedata already holds."""
from __future__ import annotations

import dataclasses

from imagedata.service.migrate.record import WITH_DATA, GlanceImage, LocalImage, data_differences, metadata_differences

# Glance states without a settled record or data: reported and skipped.
UNSETTLED = ("saving", "uploading", "importing", "killed", "pending_delete", "deleted")

# Actions: what the run does.
CREATE = "create"  # a new record (and its data)
CONTINUE = "continue"  # the record is there (a run was cut midway, or the bytes were refused): add the data
UPDATE = "update"  # the same data; Glance's metadata changed (with --update-metadata)
UNCHANGED = "unchanged"  # migrated already, nothing differs
SKIP = "skip"  # Glance's status is not one a migration carries
CONFLICT = "conflict"  # imagedata holds something else under this id: never overwritten


@dataclasses.dataclass
class Plan:
    """The action for one image and why."""

    action: str
    reason: str = ""
    needs_data: bool = False
    update_metadata: bool = False


def plan_image(glance: GlanceImage, local: LocalImage | None, allow_update: bool) -> Plan:
    """Decide what happens to one image (see the actions above)."""
    if glance.status in UNSETTLED:
        return Plan(SKIP, f"Glance status {glance.status}")
    if local is None:
        return Plan(CREATE, needs_data=glance.has_data)
    row = local.row
    if row.deleted:
        return Plan(CONFLICT, "an image with this id was deleted in imagedata (ids are never reused)")
    if row.status not in ("queued", *WITH_DATA):
        return Plan(CONFLICT, f"the image is {row.status} in imagedata (an upload is in progress)")
    changed = metadata_differences(glance, local)
    changes = Plan(UPDATE, "changed on Glance: " + ", ".join(changed), update_metadata=True) if changed else None
    if changed and not allow_update:
        return Plan(CONFLICT, "differs from Glance: " + ", ".join(changed) + " (--update-metadata brings it over)")
    if row.status in WITH_DATA:
        if not glance.has_data:
            return Plan(CONFLICT, "imagedata holds data that Glance does not have (Glance status queued)")
        differs = data_differences(glance, local)
        if differs:
            return Plan(CONFLICT, "the data differs from Glance's: " + ", ".join(differs))
        return changes or Plan(UNCHANGED, "migrated already")
    if row.kept_size is not None:
        return Plan(CONFLICT, "an upload to imagedata keeps the bytes of an interrupted upload for this image")
    if glance.has_data:
        return Plan(CONTINUE, "the record is there without its data", needs_data=True, update_metadata=bool(changed))
    return changes or Plan(UNCHANGED, "migrated already (queued without data, as on Glance)")
