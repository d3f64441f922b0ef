"""`imagedata verify`: re-read stored data and compare it with the record.

On a terminal it shows a progress bar (rich); otherwise (cron, a timer, a pipe) it prints
one plain line per problem. Both end with a summary table. Exit code 0 when every image
matches, 1 when any is corrupt, missing or unreadable.
"""
from __future__ import annotations

import re
import sys
import time

import click
from flask import current_app
from flask.cli import with_appcontext
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from imagedata import metrics
from imagedata.cli.connect import connected
from imagedata.cli.progress import transfer_columns
from imagedata.service.cache.upkeep import verify_cache
from imagedata.service.verify import RESULTS, count_results, select_copies, verify_images

RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?(?:/s)?\s*$", re.IGNORECASE)
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class Rate(click.ParamType):
    """A read rate in bytes per second: ``52428800``, ``50M``, ``1G``, ``500k`` (binary units)."""

    name = "RATE"

    def convert(self, value, param, ctx):
        """Parse the rate; 0 is refused (use no option for "unbounded")."""
        if isinstance(value, (int, float)):
            return float(value)
        match = RATE_RE.match(str(value))
        if not match or float(match.group(1)) <= 0:
            self.fail(f"{value!r} is not a rate such as 50M (bytes per second, K/M/G/T units)", param, ctx)
        return float(match.group(1)) * UNITS[match.group(2).lower()]


def _verify_cache(services) -> None:
    """``verify --cache``: re-hash every copy in this host's cache; exit 1 if any was corrupt."""
    if services.cache is None:
        raise click.UsageError("this host has no image cache (IMAGEDATA_CACHE_DIR and IMAGEDATA_CACHE_MAX_BYTES)")
    started = time.monotonic()
    with connected():
        findings = verify_cache(services, on_finding=lambda f: f.result != "ok" and click.echo(_problem_line(f)))
    counts, sizes = count_results(findings), _sizes(findings)
    Console(highlight=False, soft_wrap=True).print(_summary(counts, sizes, time.monotonic() - started,
                                                             sys.stdout.isatty(), "cached copies"))
    if counts["ok"] != len(findings):
        raise SystemExit(1)


def _sizes(findings) -> dict:
    sizes = dict.fromkeys(RESULTS, 0)
    for finding in findings:
        sizes[finding.result] += finding.size
    return sizes


def _summary(counts: dict, sizes: dict, seconds: float, terminal: bool, what: str = "image(s)") -> Table:
    table = Table(title=f"verify: {sum(counts.values())} {what} in {seconds:.1f} s",
                  box=box.SIMPLE if terminal else box.ASCII, title_justify="left")
    table.add_column("result")
    table.add_column("images", justify="right")
    table.add_column("bytes read", justify="right")
    for result in RESULTS:
        table.add_row(result, str(counts[result]), str(sizes[result]))
    return table


def _problem_line(finding) -> str:
    action = " (deactivated)" if finding.deactivated else ""
    return f"{finding.result}\t{finding.image_id}\t{finding.store_id}\t{finding.reason}{action}"


@click.command()
@click.option("--store", "store_id", default=None, help="Only images in this store.")
@click.option("--image", "image_id", default=None, help="Only this image.")
@click.option("--project", default=None, help="Only images owned by this project.")
@click.option("--deactivate", is_flag=True, help="Deactivate corrupt images, so nobody downloads them.")
@click.option("--max-rate", type=Rate(), default=None,
              help="Read at most this many bytes per second (e.g. 50M), to run beside traffic.")
@click.option("--cache", "in_cache", is_flag=True,
              help="Re-hash this host's cached copies instead (corrupt ones are dropped).")
@with_appcontext
def verify(store_id, image_id, project, deactivate, max_rate, in_cache):
    """Re-read stored image data and compare md5 and os_hash_value with the record."""
    services = current_app.extensions["imagedata"]
    if in_cache:
        _verify_cache(services)
        return
    if store_id is not None and services.stores.named(store_id) is None:
        raise click.UsageError(f"no store {store_id!r} (configured: {', '.join(s.store_id for s in services.stores)})")
    terminal = sys.stdout.isatty()
    console = Console(highlight=False, soft_wrap=True)
    started = time.monotonic()
    with connected(stores=True):
        copies = select_copies(store_id, image_id, project)
        if image_id is not None and not copies:
            raise click.UsageError(f"no image {image_id} with data")
        total = sum(copy.size or 0 for copy in copies)
        if terminal:
            with Progress(*transfer_columns(time_left=True), console=console, transient=True) as progress:
                task = progress.add_task(f"verifying {len(copies)} image(s)", total=total)
                findings = verify_images(
                    services, copies, deactivate, max_rate,
                    on_bytes=lambda n: progress.advance(task, n),
                    on_finding=lambda f: f.result != "ok" and progress.console.print(_problem_line(f)))
        else:
            click.echo(f"verifying {len(copies)} image(s), {total} bytes")
            findings = verify_images(services, copies, deactivate, max_rate,
                                     on_finding=lambda f: f.result != "ok" and click.echo(_problem_line(f)))
    counts, sizes = count_results(findings), _sizes(findings)
    metrics.record_verify(counts, sum(sizes.values()))
    console.print(_summary(counts, sizes, time.monotonic() - started, terminal))
    if counts["ok"] != len(findings):
        raise SystemExit(1)
