"""`--verify-only`: compare what imagedata holds with Glance, changing nothing.

Records, tags, properties, members, status and the recorded checksums are compared; with
``--bytes`` the stored data is read back and its md5 and multihash compared as well (against
imagedata's record, which must itself equal Glance's).
"""
from __future__ import annotations

import time

from imagedata.db import database
from imagedata.service import Services, locations
from imagedata.service.migrate.plan import UNSETTLED
from imagedata.service.migrate.record import GlanceImage, data_differences, load_local, metadata_differences
from imagedata.service.migrate.run import Events, NoEvents, Outcome, fetch_members, select_images
from imagedata.service.migrate.source import GlanceSource, SourceError
from imagedata.service.verify import RateLimit, check_copy

RESULTS = ("verified", "differs", "missing", "skipped", "failed")  # failed: Glance could not be read


def verify_all(svc: Services, source: GlanceSource, images=(), projects=(), read_bytes: bool = False,
               events: Events = NoEvents()) -> list[Outcome]:
    """One Outcome per selected Glance image: verified, differs (and what), missing or skipped."""
    chosen, outcomes = select_images(source, images, projects)
    events.selected(chosen)
    for glance in chosen:
        started = time.monotonic()
        try:
            fetch_members(source, glance)
            with database.connection_context():
                outcome = verify_one(svc, glance, read_bytes, events)
        except SourceError as exc:
            outcome = Outcome(glance.id, glance.name, glance.owner, glance.status, "verify", "failed", str(exc))
        outcome.seconds = round(time.monotonic() - started, 3)
        events.finished(outcome)
        outcomes.append(outcome)
    return outcomes


def verify_one(svc: Services, glance: GlanceImage, read_bytes: bool, events: Events) -> Outcome:
    """Compare one image."""
    outcome = Outcome(glance.id, glance.name, glance.owner, glance.status, "verify", "verified",
                      size=glance.data.get("size"))
    if glance.status in UNSETTLED:
        outcome.result, outcome.reason = "skipped", f"Glance status {glance.status}"
        return outcome
    local = load_local(glance.id)
    if local is None or local.row.deleted:
        outcome.result, outcome.reason = "missing", "not in imagedata" if local is None else "deleted in imagedata"
        return outcome
    differs = metadata_differences(glance, local)
    if glance.status != local.row.status and "status" not in differs:
        differs.append(f"status ({local.row.status} in imagedata)")
    if glance.has_data:
        differs += data_differences(glance, local)
    if not differs and read_bytes and glance.has_data:
        events.started(glance)
        copies = locations.copies_of(local.row.id)
        if not copies:
            differs.append("stored bytes: no copy recorded")
        for copy in copies:  # every copy (one after a migration; more once copied between stores)
            finding = check_copy(svc, copy, RateLimit(None), lambda n: events.advanced(glance.id, n))
            outcome.copied += finding.size
            if finding.result != "ok":
                differs.append(f"stored bytes in {copy.store}: {finding.result} ({finding.reason})")
    if differs:
        outcome.result, outcome.reason = "differs", ", ".join(differs)
    return outcome
