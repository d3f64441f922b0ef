"""Imports whose host died: taken over once their lease expires, and run again here.

The new attempt removes what the dead one was writing and runs the task's job again:
copies already verified stay and are skipped, glance-direct reads its staged data again,
web-download fetches the URL again, copy-image copies again. A task taken over too often
is ended as failed, and the image is let go (queued again, or active for a copy).
"""
from __future__ import annotations

import logging

from imagedata.service import Services, lifecycle, tasks
from imagedata.service.imports.requests import job_of
from imagedata.service.imports.runner import run, start

log = logging.getLogger(__name__)

MAX_TAKEOVERS = 3


def take_over_imports(svc: Services, background: bool = True) -> list[str]:
    """Take over every import whose attempt is dead; run each in a thread (``background``) or
    here, one after another. Returns the image ids taken over."""
    taken = []
    for image in lifecycle.dead_imports(svc):
        att = lifecycle.take_over_import(svc, image)
        if att is None:
            continue
        task_id = lifecycle.import_task_of(image.id)
        task = tasks.find_task(task_id) if task_id else None
        if task is None or task.status not in ("pending", "processing") or _takeovers(task) >= MAX_TAKEOVERS:
            reason = "its task is gone" if task is None else "it was taken over too often"
            lifecycle.end_import(svc, att, f"the import's host stopped and {reason}")
            if task is not None and task.status in ("pending", "processing"):
                tasks.finish_task(task.id, "failure", message="The host running the import stopped too often.")
            continue
        tasks.update_task(task.id, message=f"Taken over by host {svc.settings.host_id} after its host stopped",
                          result={"takeovers": _takeovers(task) + 1})
        job = job_of(task)
        if background:
            start(svc, job, att)
        else:
            run(svc, job, att)
        taken.append(image.id)
    return taken


def _takeovers(task) -> int:
    count = (tasks.task_result(task) or {}).get("takeovers", 0)
    return count if isinstance(count, int) else 0
