"""The whole migration: select Glance's images, plan each, carry them over in parallel, report.

Safe to run again and again: each image is planned from what imagedata holds now (see
``plan``); an image whose transfer was cut by a killed run is found with a dead upload lease,
returned to queued (what it wrote removed) and continued.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import time
from typing import Protocol

from imagedata.db import database
from imagedata.errors import ImageDataError
from imagedata.service import Services, lifecycle, quotas
from imagedata.service.migrate import plan as plans
from imagedata.service.migrate.adopt import AdoptConflict, create_record, update_metadata
from imagedata.service.migrate.record import WITH_DATA, GlanceImage, from_glance, load_local, parse_members
from imagedata.service.migrate.source import GlanceSource, SourceError
from imagedata.service.migrate.transfer import copy_data
from imagedata.stores.base import Store

log = logging.getLogger(__name__)

RESULTS = ("migrated", "updated", "unchanged", "planned", "skipped", "conflict", "failed")
DONE = ("migrated", "updated", "unchanged")  # the results that count as success
RESULT_OF = {plans.CREATE: "migrated", plans.CONTINUE: "migrated", plans.UPDATE: "updated",
             plans.UNCHANGED: "unchanged", plans.SKIP: "skipped", plans.CONFLICT: "conflict"}


@dataclasses.dataclass
class Options:
    """What the operator asked for."""

    images: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    store_id: str | None = None
    dry_run: bool = False
    parallel: int = 2
    update_metadata: bool = False


@dataclasses.dataclass
class Outcome:
    """What happened to one image (one entry of the report)."""

    image_id: str
    name: str | None
    owner: str | None
    glance_status: str
    action: str
    result: str
    reason: str = ""
    size: int | None = None
    copied: int = 0  # bytes read from Glance
    resumed: int = 0  # downloads continued with Range
    seconds: float = 0.0


class Events(Protocol):
    """Progress callbacks (called from the transfer threads)."""

    def selected(self, images: list[GlanceImage]) -> None: ...
    def started(self, image: GlanceImage) -> None: ...
    def advanced(self, image_id: str, count: int) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...


class NoEvents:
    """Progress nobody watches."""

    def selected(self, images: list[GlanceImage]) -> None:
        """The images the run will go through."""

    def started(self, image: GlanceImage) -> None:
        """An image's transfer began."""

    def advanced(self, image_id: str, count: int) -> None:
        """``count`` more bytes arrived."""

    def finished(self, outcome: Outcome) -> None:
        """An image is done."""


def select_images(source: GlanceSource, images=(), projects=()) -> tuple[list[GlanceImage], list[Outcome]]:
    """Glance's images by id, by owner, or all (members are read per image, by the workers); and
    the ids Glance did not have."""
    bodies, missing = [], []
    if images:
        for image_id in dict.fromkeys(i.lower() for i in images):
            try:
                bodies.append(source.get_image(image_id))
            except SourceError as exc:
                missing.append(Outcome(image_id, None, None, "", "none", "failed", f"not read from Glance: {exc}"))
        if projects:
            bodies = [b for b in bodies if b.get("owner") in projects]
    elif projects:
        for project in dict.fromkeys(projects):
            bodies += list(source.list_images(owner=project))
    else:
        bodies = list(source.list_images())
    return [from_glance(body) for body in bodies], missing


def fetch_members(source: GlanceSource, glance: GlanceImage) -> None:
    """Read the image's members from Glance (only shared images have any; Glance: 403 for the rest)."""
    if glance.base.get("visibility") == "shared":
        glance.members = parse_members(source.list_members(glance.id))


def choose_store(svc: Services, store_id: str | None) -> Store:
    """The named store or the default (never the staging store, which holds no image's copy);
    ValueError naming the configured ones."""
    store = svc.stores.named(store_id) if store_id else svc.stores.default
    if store is None:
        raise ValueError(f"no store {store_id!r} (configured: {', '.join(s.store_id for s in svc.stores)})")
    return store


def migrate(svc: Services, source: GlanceSource, opts: Options, events: Events = NoEvents()) -> list[Outcome]:
    """Carry the selected images over; one Outcome per image, in Glance's order."""
    store = choose_store(svc, opts.store_id)
    images, outcomes = select_images(source, opts.images, opts.projects)
    events.selected(images)
    if not opts.dry_run:
        with database.connection_context():
            lifecycle.recover(svc)  # transfers of a run that was killed: back to queued, bytes removed
    with concurrent.futures.ThreadPoolExecutor(max(1, opts.parallel)) as pool:
        outcomes += list(pool.map(lambda image: migrate_one(svc, source, store, image, opts, events), images))
    return outcomes


def migrate_one(svc: Services, source: GlanceSource, store: Store, glance: GlanceImage, opts: Options,
                events: Events) -> Outcome:
    """Plan and carry over one image; never raises for a problem of this image alone."""
    started = time.monotonic()
    outcome = Outcome(glance.id, glance.name, glance.owner, glance.status, "", "", size=glance.data.get("size"))
    try:
        fetch_members(source, glance)
        with database.connection_context():
            plan = plans.plan_image(glance, load_local(glance.id), opts.update_metadata)
            outcome.action, outcome.reason = plan.action, plan.reason
            outcome.result = RESULT_OF[plan.action]
            if opts.dry_run:
                if plan.action in (plans.CREATE, plans.CONTINUE, plans.UPDATE):
                    outcome.result = "planned"
            else:
                _carry_out(svc, source, store, glance, plan, outcome, events)
    except (SourceError, AdoptConflict, ImageDataError, OSError) as exc:
        outcome.result, outcome.reason = "failed", getattr(exc, "message", None) or str(exc)
        log.error("image %s: %s", glance.id, outcome.reason)
    except Exception as exc:  # one image's surprise must not stop the others
        outcome.result, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
        log.exception("image %s failed", glance.id)
    outcome.seconds = round(time.monotonic() - started, 3)
    events.finished(outcome)
    return outcome


def _carry_out(svc: Services, source: GlanceSource, store: Store, glance: GlanceImage, plan: plans.Plan,
               outcome: Outcome, events: Events) -> None:
    if plan.action == plans.CREATE:
        create_record(glance)
    elif plan.update_metadata:
        local = load_local(glance.id)
        keeps_data = local is not None and local.row.status in WITH_DATA and glance.has_data
        update_metadata(glance, glance.status if keeps_data else None)
    if not plan.needs_data:
        return
    events.started(glance)

    def advanced(count: int) -> None:
        outcome.copied += count
        events.advanced(glance.id, count)

    def resumed(offset: int, reason: str) -> None:
        outcome.resumed += 1

    written = copy_data(svc, source, glance, store, advanced, resumed)
    if written.problem is not None:
        outcome.result, outcome.reason = "failed", f"{written.problem}; the image is left queued in imagedata"


def over_quota(svc: Services, outcomes: list[Outcome]) -> list[dict]:
    """The projects a migration left over a quota limit (quotas are not enforced against it)."""
    found = []
    with database.connection_context():
        for project in sorted({o.owner for o in outcomes if o.owner}):
            limits, used = quotas.limits_for(svc.settings, project), quotas.usage(project)
            for name in quotas.LIMIT_NAMES:
                if limits[name] and used[name] > limits[name]:
                    found.append({"project": project, "limit": name, "usage": used[name], "allowed": limits[name]})
    return found
