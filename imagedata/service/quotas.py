"""Strict per-project quotas: reservations are taken in a serialised transaction."""
from __future__ import annotations

from peewee import fn

from imagedata.config import Settings
from imagedata.errors import BadRequest, TooLarge
from imagedata.models import Image, ProjectQuota

LIMIT_NAMES = ("image_size_total", "image_count_total", "image_count_uploading")
STORED_STATUSES = ("active", "deactivated")
IMPORTING_STATUSES = ("uploading", "importing")  # staged data and imports in flight hold reservations


def limits_for(settings: Settings, project: str | None) -> dict[str, int]:
    """The limits in force for ``project`` (0 means unlimited)."""
    limits = {
        "image_size_total": settings.quota_image_size_total,
        "image_count_total": settings.quota_image_count_total,
        "image_count_uploading": settings.quota_image_count_uploading,
    }
    row = ProjectQuota.get_or_none(ProjectQuota.project == project) if project is not None else None
    if row is not None:
        for name in LIMIT_NAMES:
            value = getattr(row, name)
            if value is not None:
                limits[name] = value
    return limits


def lock_project(project: str) -> None:
    """Serialise quota decisions for one project (call inside a transaction).

    The update takes a row lock on PostgreSQL and the write lock on SQLite, so two
    workers (or hosts) deciding for the same project run one after the other.
    """
    ProjectQuota.insert(project=project).on_conflict_ignore().execute()
    ProjectQuota.update(serial=ProjectQuota.serial + 1).where(ProjectQuota.project == project).execute()


def _live(project: str):
    return (Image.owner == project) & (Image.deleted == False)  # noqa: E712


def usage(project: str, exclude: str | None = None) -> dict[str, int]:
    """Current usage of ``project``: stored plus reserved bytes, image and upload counts."""
    live = _live(project)
    if exclude:
        live &= Image.id != exclude
    stored = (Image.select(fn.COALESCE(fn.SUM(Image.size), 0))
              .where(live & Image.status.in_(STORED_STATUSES)).scalar())
    # Uploads in flight and kept partial data of interrupted uploads hold reservations.
    reserved = (Image.select(fn.COALESCE(fn.SUM(Image.reserved_bytes), 0))
                .where(live & Image.status.in_(("saving", "queued") + IMPORTING_STATUSES)).scalar())
    return {
        "image_size_total": int(stored) + int(reserved),
        "image_count_total": Image.select().where(_live(project)).count(),
        "image_count_uploading": Image.select().where(
            live & Image.status.in_(("saving",) + IMPORTING_STATUSES)).count(),
    }


def check_image_count(settings: Settings, project: str) -> None:
    """413 when creating one more image would pass the image count limit."""
    limit = limits_for(settings, project)["image_count_total"]
    if not limit:
        return
    lock_project(project)
    count = Image.select().where(_live(project)).count()
    if count + 1 > limit:
        raise TooLarge(f"Image count quota exceeded: image_count_total is over limit of {limit} "
                       f"due to current usage {count} and delta 1")


def reserve_upload(settings: Settings, image_id: str, project: str | None,
                   expected: int | None) -> tuple[int, int | None]:
    """Reserve quota for one upload (inside the begin-upload transaction).

    Returns (bytes reserved, byte limit for the stream or None when unlimited).
    """
    if project is None:
        return 0, None
    limits = limits_for(settings, project)
    if not any(limits.values()):
        return 0, None
    lock_project(project)
    used = usage(project, exclude=image_id)
    uploading_limit = limits["image_count_uploading"]
    if uploading_limit and used["image_count_uploading"] + 1 > uploading_limit:
        raise TooLarge(f"Upload quota exceeded: image_count_uploading is over limit of {uploading_limit} "
                       f"due to current usage {used['image_count_uploading']} and delta 1")
    size_limit = limits["image_size_total"]
    if not size_limit:
        return 0, None
    remaining = size_limit - used["image_size_total"]
    if expected is not None:
        if expected > remaining:
            raise TooLarge(quota_message(size_limit, used["image_size_total"], expected))
        return expected, expected
    if remaining <= 0:
        raise TooLarge(quota_message(size_limit, used["image_size_total"], 1))
    return remaining, remaining


def quota_message(limit: int, used: int, delta: int) -> str:
    """The 413 text naming the storage quota."""
    remaining = max(limit - used, 0)
    return (f"Image exceeds the storage quota: image_size_total is over limit of {limit} bytes "
            f"due to current usage {used} and delta {delta}; {remaining} bytes remaining.")


def usage_report(settings: Settings, project: str | None) -> dict:
    """The body of GET /v2/info/usage for the caller's project."""
    if project is None:
        return {"usage": {}}
    limits = limits_for(settings, project)
    used = usage(project)
    return {"usage": {name: {"limit": limits[name] if limits[name] else -1, "usage": used[name]}
                      for name in LIMIT_NAMES}}


def set_quota(project: str, **values) -> None:
    """Store per-project overrides (None leaves a limit unchanged)."""
    ProjectQuota.insert(project=project).on_conflict_ignore().execute()
    changes = {k: v for k, v in values.items() if v is not None}
    if changes:
        ProjectQuota.update(**changes).where(ProjectQuota.project == project).execute()


def project_reports(settings: Settings) -> list[dict]:
    """Limits and usage of every project that owns an image or has its own limits, by name."""
    owners = Image.select(Image.owner).where((Image.deleted == False) & Image.owner.is_null(False)).distinct()  # noqa: E712
    projects = {row.owner for row in owners} | {row.project for row in ProjectQuota.select(ProjectQuota.project)}
    return [{"project": project, **usage_report(settings, project)} for project in sorted(projects)]


def check_limits(body) -> dict[str, int]:
    """The limits of a quota request body (``{"image_size_total": bytes, ...}``); 400 when malformed."""
    if not isinstance(body, dict) or not body or set(body) - set(LIMIT_NAMES):
        raise BadRequest(f"Send one or more of {', '.join(LIMIT_NAMES)} (0 means unlimited).")
    for name, value in body.items():
        bound = 2**63 if name == "image_size_total" else 2**31
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < bound:
            raise BadRequest(f"{name} must be a whole number from 0 (unlimited).")
    return body
