"""`imagedata migrate-from-glance`: every image of a Glance, with its id, metadata, members and bytes.

On a terminal: a progress bar per transfer and one overall (rich); otherwise one plain line per
image. Both end with a summary table. Exit 0 when every selected image was migrated and
verified (or already was); 1 when any was skipped, refused, in conflict or failed.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time

import click
from flask import current_app
from flask.cli import with_appcontext
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from imagedata.cli.progress import transfer_columns
from imagedata.db import database
from imagedata.migrations import SchemaError, check_schema
from imagedata.service.migrate.catalog import source_from_keystone
from imagedata.service.migrate.compare import RESULTS as VERIFY_RESULTS
from imagedata.service.migrate.compare import verify_all
from imagedata.service.migrate.run import DONE, RESULTS, NoEvents, Options, choose_store, migrate, over_quota
from imagedata.service.migrate.source import GlanceSource, SourceError


class Lines(NoEvents):
    """Quiet output: one line per image once it is done."""

    def __init__(self, echo):
        self.echo = echo

    def finished(self, outcome) -> None:
        """Print the image's result."""
        self.echo(_line(outcome))


class Bars(NoEvents):
    """A bar per transfer and one overall; problems printed above the bars."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.overall = progress.add_task("reading Glance's listing", total=None)
        self.tasks: dict[str, int] = {}
        self.lock = threading.Lock()

    def selected(self, images) -> None:
        """The overall bar counts every byte of the selected images."""
        total = sum(image.data.get("size") or 0 for image in images)
        self.progress.update(self.overall, description=f"{len(images)} image(s)", total=total or None)

    def started(self, image) -> None:
        """A bar for the image."""
        with self.lock:
            self.tasks[image.id] = self.progress.add_task(f"{image.id[:8]} {image.name or ''}"[:40],
                                                          total=image.data.get("size") or None)

    def advanced(self, image_id: str, count: int) -> None:
        """Move the image's bar and the overall one."""
        task = self.tasks.get(image_id)
        if task is not None:
            self.progress.advance(task, count)
        self.progress.advance(self.overall, count)

    def finished(self, outcome) -> None:
        """Drop the image's bar; print the image unless all went well."""
        with self.lock:
            task = self.tasks.pop(outcome.image_id, None)
        if task is not None:
            self.progress.remove_task(task)
        if outcome.result not in DONE + ("verified",):
            self.progress.console.print(_line(outcome), markup=False, highlight=False)


def _line(outcome) -> str:
    return "\t".join([outcome.result, outcome.image_id, outcome.name or "", outcome.reason])


def _summary(outcomes, results, seconds: float, terminal: bool, title: str) -> Table:
    copied = sum(o.copied for o in outcomes)
    rate = f", {copied / seconds / (1 << 20):.1f} MiB/s" if copied and seconds else ""
    table = Table(title=f"{title}: {len(outcomes)} image(s) in {seconds:.1f} s{rate}",
                  box=box.SIMPLE if terminal else box.ASCII, title_justify="left")
    # MiB/s per transfer: bytes over the seconds the transfers of that result took.
    for column, justify in (("result", "left"), ("images", "right"), ("bytes", "right"),
                            ("MiB/s each", "right")):
        table.add_column(column, justify=justify)
    for result in results:
        chosen = [o for o in outcomes if o.result == result]
        copied = sum(o.copied for o in chosen)
        busy = sum(o.seconds for o in chosen if o.copied)
        rate = f"{copied / busy / (1 << 20):.1f}" if copied and busy else ""
        table.add_row(result, str(len(chosen)), str(copied), rate)
    return table


def make_source(glance_url, glance_token, os_cloud) -> GlanceSource:
    """The Glance to read: a URL and a token, or Keystone credentials (a cloud, or OS_*)."""
    if glance_url or glance_token:
        if not (glance_url and glance_token):
            raise click.UsageError("--glance-url and --glance-token go together (or use --os-cloud / OS_*)")
        try:
            return GlanceSource(glance_url, lambda: glance_token)
        except SourceError as exc:
            raise click.BadParameter(str(exc), param_hint="--glance-url") from None
    try:
        return source_from_keystone(os_cloud)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("migrate-from-glance")
@click.option("--glance-url", envvar="IMAGEDATA_GLANCE_URL", metavar="URL",
              help="Glance's root URL (a trailing /v2 is accepted).")
@click.option("--glance-token", envvar="IMAGEDATA_GLANCE_TOKEN", metavar="TOKEN",
              help="An admin token for it (or IMAGEDATA_GLANCE_TOKEN).")
@click.option("--os-cloud", envvar="OS_CLOUD", metavar="NAME",
              help="A cloud of clouds.yaml (else the OS_* environment).")
@click.option("--image", "images", multiple=True, metavar="ID", help="Only this image (repeatable).")
@click.option("--project", "projects", multiple=True, metavar="ID", help="Only images of this project (repeatable).")
@click.option("--store", "store_id", default=None, metavar="S",
              help="The store the data goes to (default: the default store).")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@click.option("--parallel", type=click.IntRange(1, 32), default=2, metavar="N", show_default=True,
              help="Concurrent transfers.")
@click.option("--update-metadata", is_flag=True, help="Bring over metadata changed on Glance since the last run.")
@click.option("--verify-only", is_flag=True, help="Compare both sides (records, members, tags, checksums).")
@click.option("--bytes", "read_bytes", is_flag=True, help="With --verify-only: read the stored bytes back too.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write every image's outcome to this JSON file.")
@with_appcontext
def migrate_from_glance(glance_url, glance_token, os_cloud, images, projects, store_id, dry_run, parallel,
                        update_metadata, verify_only, read_bytes, report_path):
    """Copy every image of a Glance (ids, metadata, members, verified bytes) into this service."""
    if read_bytes and not verify_only:
        raise click.UsageError("--bytes goes with --verify-only")
    if verify_only and (dry_run or update_metadata):
        raise click.UsageError("--verify-only changes nothing: it does not combine with --dry-run or --update-metadata")
    services = current_app.extensions["imagedata"]
    with database.connection_context():
        try:
            check_schema()
        except SchemaError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        store = choose_store(services, store_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from None
    source = make_source(glance_url, glance_token, os_cloud)
    terminal = sys.stdout.isatty()
    console = Console(highlight=False, soft_wrap=True)
    options = Options(images, projects, store.store_id, dry_run, parallel, update_metadata)
    started = time.monotonic()
    try:
        outcomes = _run(services, source, options, verify_only, read_bytes, terminal, console)
    except SourceError as exc:
        raise click.ClickException(f"Glance could not be read: {exc}") from None
    seconds = time.monotonic() - started
    title = "verify-only" if verify_only else ("dry run" if dry_run else "migrate-from-glance")
    results = VERIFY_RESULTS if verify_only else RESULTS
    console.print(_summary(outcomes, results, seconds, terminal, title))
    over = [] if verify_only else over_quota(services, outcomes)
    for entry in over:
        click.echo(f"over quota\t{entry['project']}\t{entry['limit']}\tusage {entry['usage']} > {entry['allowed']}")
    if report_path:
        _write_report(report_path, source, store.store_id, title, seconds, outcomes, over)
    wanted = ("verified",) if verify_only else DONE + (("planned",) if dry_run else ())
    if any(o.result not in wanted for o in outcomes):
        raise SystemExit(1)


def _run(services, source, options: Options, verify_only: bool, read_bytes: bool, terminal: bool, console):
    """Run with bars on a terminal, with lines otherwise."""
    def work(events):
        if verify_only:
            return verify_all(services, source, options.images, options.projects, read_bytes, events)
        return migrate(services, source, options, events)

    if not terminal:
        return work(Lines(click.echo))
    with Progress(*transfer_columns(), console=console, transient=True) as progress:
        return work(Bars(progress))


def _write_report(path, source, store_id, title, seconds, outcomes, over) -> None:
    counts = {}
    for outcome in outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    with open(path, "w") as f:
        json.dump({"command": title, "glance": source.root, "store": store_id, "seconds": round(seconds, 3),
                   "summary": counts, "over_quota": over, "images": [dataclasses.asdict(o) for o in outcomes]},
                  f, indent=1)
        f.write("\n")
