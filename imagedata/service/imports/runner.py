"""Running an import task: the data from its source into each target store, verified.

An import runs in a thread of the process that accepted it (or took it over), with its own
database connection, while its attempt holds the image and a heartbeat renews the lease.
glance-direct reads the staged data, web-download the URL (its first copy; the other stores
are filled from that copy), copy-image an existing copy. Each copy is checked as PUT /file
checks an upload (``copier``). The task's message says how far it got ("Copied 15 MiB"),
and why it failed when it did.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable, Collection

from imagedata.db import UNAVAILABLE_ERRORS, database
from imagedata.errors import Conflict, Gone, ImageDataError, ImageDataUnavailable
from imagedata.models import Image
from imagedata.service import Services, lifecycle, locations, tasks
from imagedata.service.download import open_copy
from imagedata.service.heartbeat import Heartbeat
from imagedata.service.imports import convert
from imagedata.service.imports.copier import Copied, DataMismatch, Expected, copy_into
from imagedata.service.lifecycle import Attempt
from imagedata.service.webfetch.errors import SourceRestarted, SourceTooLarge
from imagedata.service.webfetch.policy import FetchPolicy
from imagedata.service.webfetch.source import open_url
from imagedata.stores.base import DataMissing

log = logging.getLogger(__name__)

MIB = 1 << 20
MAX_RESTARTS = 3  # a web source that changes under us this often is given up


@dataclasses.dataclass(frozen=True)
class ImportJob:
    """What one import task does."""

    task_id: str
    image_id: str
    method: str  # glance-direct, web-download, copy-image
    stores: tuple[str, ...]
    must_succeed: bool = True  # all_stores_must_succeed
    uri: str | None = None  # web-download

    def as_input(self) -> dict:
        """What the task record keeps, to run the job again after a takeover."""
        return {"method": self.method, "stores": list(self.stores), "all_stores_must_succeed": self.must_succeed,
                "uri": self.uri}


def start(svc: Services, job: ImportJob, att: Attempt) -> threading.Thread:
    """Run the job in a daemon thread (a process that dies leaves it to the lease)."""
    thread = threading.Thread(target=run, args=(svc, job, att), name=f"import-{job.image_id[:8]}", daemon=True)
    thread.start()
    return thread


def run(svc: Services, job: ImportJob, att: Attempt) -> bool:
    """Run one import to its end; returns whether its task succeeded."""
    with database.connection_context():
        heartbeat = Heartbeat(job.image_id, att.attempt, max(1.0, svc.settings.upload_lease_seconds / 6))
        failure = None
        try:
            _begin(job.task_id)
            failure = _copy_everywhere(svc, job, att, heartbeat)
        except BaseException as exc:  # the task says why; the image is let go below
            if isinstance(exc, ImageDataError) and not lifecycle.still_holds(job.image_id, att.attempt):
                exc = _lost(job.image_id)  # whichever step noticed it (a copy, its record, the activation)
            failure = _reason(exc)
            if not isinstance(exc, (ImageDataError, OSError) + UNAVAILABLE_ERRORS):
                log.exception("import task %s of image %s failed", job.task_id, job.image_id)
        finally:
            heartbeat.stop()
        # Glance: a copy-image whose stores must all succeed removes the copies it made
        revert = job.stores if failure is not None and job.must_succeed and job.method == "copy-image" else ()
        active = lifecycle.end_import(svc, att, failure, revert)
        if failure is not None and not active and lifecycle.deleted_error(job.image_id) is not None:
            lost = _reason(_lost(job.image_id))  # deleted after a store failed: both are said
            failure = failure if lost in failure else f"{lost} ({failure})"
        succeeded = failure is None or (active and not job.must_succeed)
        _finish(job, succeeded, failure)
        return succeeded


def _copy_everywhere(svc: Services, job: ImportJob, att: Attempt, heartbeat: Heartbeat) -> str | None:
    """Copy into each target store in turn (converted first, when the operator asks for a
    disk format); returns why the import failed, or None."""
    image = Image.get_by_id(job.image_id)
    att.image = image
    target = svc.settings.import_convert_to
    if job.method == "copy-image" or image.status != "importing" or not convert.wanted(target, image):
        return _copy_to_stores(svc, job, att, heartbeat, None)
    for _ in range(MAX_RESTARTS + 1):
        pieces, close, _ = _source(svc, job, att, heartbeat, [], Expected())
        try:
            with convert.converted(svc.settings.data_dir, att, pieces(None), target, heartbeat,
                                   _progress_reporter(job.task_id, "the conversion area")) as (path, _):
                att.image.disk_format = target  # what the copies are checked against from now on
                return _copy_to_stores(svc, job, att, heartbeat, path)
        except SourceRestarted as restart:
            log.warning("import task %s: %s", job.task_id, restart.message)
        finally:
            close()
    raise ImageDataUnavailable(f"The source of the import changed {MAX_RESTARTS + 1} times while it was read.")


def _copy_to_stores(svc: Services, job: ImportJob, att: Attempt, heartbeat: Heartbeat,
                    converted_path: str | None) -> str | None:
    """Copy into each target store in turn; returns why the import failed, or None."""
    image = att.image
    made = [copy for copy in locations.copies_of(image.id) if copy.status == "active"]
    done = [copy.store for copy in made]
    expected = Expected()
    if job.method == "copy-image":
        expected = Expected(image.size, image.checksum, image.os_hash_value, image.os_hash_algo)
    elif job.method == "glance-direct" and converted_path is None:
        expected = Expected(size=image.size)
    elif made and converted_path is None:
        # a web-download taken over after its first copy: the others are read from it
        expected = Expected(made[0].size, image.checksum, image.os_hash_value, image.os_hash_algo)
    failures = []
    for store_id in job.stores:
        if store_id in done:  # taken over after this store was done
            continue
        store = svc.stores.get(store_id)
        try:
            copied = _copy_one(svc, job, att, store, expected, done, heartbeat, converted_path)
        except SourceRestarted:
            raise
        except (ImageDataError, OSError) + UNAVAILABLE_ERRORS as exc:
            if not lifecycle.still_holds(image.id, att.attempt):
                raise _lost(image.id) from exc  # deleted, or taken over: nothing more to do here
            lifecycle.import_copy_failed(svc, att, store_id)
            why = _quota_named(exc, att)
            failures.append(f"{store_id}: {why}")
            log.warning("import task %s: the copy of image %s to store %s failed: %s", job.task_id, image.id,
                        store_id, why)
            if job.must_succeed:
                return "; ".join(failures)
            continue
        lifecycle.import_copy_done(svc, att, store_id, copied.size)
        done.append(store_id)
        if expected.md5 is None:
            expected = Expected(copied.size, copied.md5, copied.digest)
        if Image.get_by_id(image.id).status == "importing" and (not job.must_succeed or _all_done(job, done)):
            lifecycle.import_active(svc, att, copied.size, copied.md5, copied.digest, copied.virtual_size,
                                    disk_format=image.disk_format if converted_path else None,
                                    detected=None if converted_path else copied.detected)
    return "; ".join(failures) or None


def _lost(image_id: str) -> ImageDataError:
    """Why an import that no longer holds its image stops (not what its source did then)."""
    if lifecycle.deleted_error(image_id) is not None:  # Glance: "Image has been deleted, aborting import."
        return Gone(f"Image {image_id} was deleted during its import; the import stopped.")
    return Conflict(f"The import of image {image_id} lost its hold on the image (another host took it over).")


def _quota_named(exc: BaseException, att: Attempt) -> str:
    """Why a copy failed; a web source cut at what is left of the project's quota says so."""
    if isinstance(exc, SourceTooLarge) and att.quota_limit is not None and att.quota_limit < att.limit:
        return (f"Image exceeds the storage quota: {exc.message} The limit is what is left of the project's "
                "image_size_total quota.")
    return _reason(exc)


def _all_done(job: ImportJob, done: list[str]) -> bool:
    return all(store_id in done for store_id in job.stores)


def _copy_one(svc: Services, job: ImportJob, att: Attempt, store, expected: Expected, done: list[str],
              heartbeat: Heartbeat, converted_path: str | None) -> Copied:
    """One store's copy, from the right source; a web source that changed starts it over, and
    a copy whose bytes are not the image's is passed over for the next one."""
    progress = _progress_reporter(job.task_id, store.store_id)
    restarts, passed_over = 0, set()
    while True:
        read_from = None
        if converted_path is not None:
            source, close = (lambda settle: convert.file_pieces(converted_path)), (lambda: None)
        else:
            source, close, read_from = _source(svc, job, att, heartbeat, done, expected, passed_over)
        try:
            return copy_into(store, att, source, expected, hash_algo=svc.settings.hash_algo, heartbeat=heartbeat,
                             progress=progress)
        except SourceRestarted as restart:
            log.warning("import task %s: %s", job.task_id, restart.message)
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise ImageDataUnavailable(
                    f"The source of the import changed {MAX_RESTARTS + 1} times while it was read.") from None
        except DataMismatch as exc:
            if read_from is None:
                raise
            log.error("image %s: its copy in store %s does not match the image (%s); the copy to store %s reads "
                      "another copy (run imagedata verify)", att.image.id, read_from, exc.message, store.store_id)
            passed_over.add(read_from)
        finally:
            close()


def _source(svc: Services, job: ImportJob, att: Attempt, heartbeat: Heartbeat, done: list[str],
            expected: Expected, passed_over: Collection[str] = ()) -> tuple[Callable, Callable[[], None], str | None]:
    """(pieces(settle), close, the store of the copy read or None) of where this copy reads:
    the staged data, the URL, or an active copy in a store not ``passed_over``."""
    image = att.image
    if job.method == "glance-direct":
        staged = next((c for c in locations.copies_of(image.id) if c.status == "staged"), None)
        try:
            if staged is None:
                raise DataMissing(image.id)
            reader = svc.stores.staging.open_range(image.id, staged.attempt, 0, staged.size)
        except DataMissing:
            raise ImageDataUnavailable("The staged data of the image is gone: stage it again.") from None
        return (lambda settle: iter(reader)), reader.close, None
    if job.method == "web-download" and not done:
        limit = att.limit if att.quota_limit is None else min(att.limit, att.quota_limit)
        remote = open_url(job.uri, FetchPolicy.from_settings(svc.settings), svc.settings.web_download_idle_timeout,
                          max_bytes=limit)
        # a deleted image stops even a stalled server's download at the next heartbeat
        heartbeat.on_lost.append(lambda: remote.cut("the import no longer holds its image"))
        return (lambda settle: remote.pieces(svc.settings.chunk_size, settle)), remote.close, None
    copies = [c for c in locations.copies_of(image.id) if c.status == "active" and c.store not in passed_over]
    if not copies and passed_over:
        raise ImageDataUnavailable(f"No copy of the image matches its checksum (passed over: "
                                   f"{', '.join(sorted(passed_over))}).")
    # An import still `importing` records the size only once every store has its copy: the
    # copy read here is checked against the size its own import verified.
    source_image = Image(**{**image.__data__, "size": expected.size})
    store, reader = open_copy(svc, source_image, copies, [], 0, expected.size)
    return (lambda settle: iter(reader)), reader.close, store.store_id


def _progress_reporter(task_id: str, store_id: str) -> Callable[[int], None]:
    def report(count: int) -> None:
        try:
            tasks.update_task(task_id, message=f"Copied {count // MIB} MiB to store {store_id}")
        except (ImageDataError,) + UNAVAILABLE_ERRORS:
            pass  # the task ended meanwhile, or the database is busy: the next report says it
    return report


def _begin(task_id: str) -> None:
    """pending -> processing (a task taken over is processing already)."""
    task = tasks.find_task(task_id)
    if task is not None and task.status == "pending":
        tasks.begin_task(task_id)


def _finish(job: ImportJob, succeeded: bool, failure: str | None) -> None:
    try:
        if succeeded:  # Glance: the last progress message ("Copied 15 MiB") stays
            tasks.finish_task(job.task_id, "success", result={"image_id": job.image_id},
                              message=f"Some stores failed: {failure}" if failure else None)
        else:
            tasks.finish_task(job.task_id, "failure", message=failure or "The import failed.")
    except (ImageDataError,) + UNAVAILABLE_ERRORS as exc:
        log.warning("import task %s could not be ended: %s", job.task_id, _reason(exc))


def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__
