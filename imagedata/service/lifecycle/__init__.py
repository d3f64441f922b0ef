"""An image's lifecycle: every change of its status and of the columns of its upload attempt.

::

    queued --take--> saving --activate--> active <--deactivate / reactivate--> deactivated
      ^  ^             |  \\--keep--> queued, keeping the bytes that arrived --take (resume)--> saving
      |  +--requeue----+   (a failure; a dead attempt: recover)
      +--expire_kept--- (kept bytes past their time)          any --retire--> deleted

One attempt at a time holds an image: ``attempt`` names it, with the host and process that
run it and a heartbeat it renews by time (``renew``); ``owns()`` is the one definition of
"this attempt still holds the image". Every transition is a compare-and-set on those columns,
so it is correct across workers and hosts. The image's copies are recorded by ``locations``,
which is also the only module that removes data from a store.

The transitions live in ``uploads`` (PUT /file, PUT /stage, migration, delete), ``importing``
(interoperable import) and ``recovery`` (dead attempts, expired kept bytes); ``rows`` holds
what they share. Callers use the names this package exports.
"""
from imagedata.service.lifecycle.importing import (FAILED_PROPERTY, IMPORT_SOURCE_STATUS, TASK_PROPERTY,
                                                   TO_STORES_PROPERTY, begin_import, dead_imports, end_import,
                                                   import_active, import_copy_done, import_copy_failed,
                                                   import_task_of, take_over_import)
from imagedata.service.lifecycle.recovery import expire_kept, lease_is_dead, pid_alive, recover
from imagedata.service.lifecycle.rows import (DATA_STATUSES, HELD, REQUEUE_TRIES, Attempt, deleted_error, lost_lease,
                                              owns, unavailable)
from imagedata.service.lifecycle.uploads import (activate, activate_migrated, keep, record_writer, renew, requeue,
                                                 retire, set_data_status, staged, still_holds, take)

__all__ = [
    "DATA_STATUSES", "FAILED_PROPERTY", "HELD", "IMPORT_SOURCE_STATUS", "REQUEUE_TRIES", "TASK_PROPERTY",
    "TO_STORES_PROPERTY", "Attempt", "activate", "activate_migrated", "begin_import", "dead_imports",
    "deleted_error", "end_import", "expire_kept", "import_active", "import_copy_done", "import_copy_failed",
    "import_task_of", "keep", "lease_is_dead", "lost_lease", "owns", "pid_alive", "record_writer", "recover",
    "renew", "requeue", "retire", "set_data_status", "staged", "still_holds", "take", "take_over_import",
    "unavailable",
]
