"""`imagedata metadefs load DIR`: load metadata definition files (Glance's JSON format)."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from imagedata.cli.main import connected
from imagedata.service.metadefs.loader import DEFAULT_OWNER, LoadError, load_definitions


@click.group()
def metadefs():
    """Metadata definitions (the namespaces behind Horizon's "Update Metadata" dialog)."""


@metadefs.command("load")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, dir_okay=True))
@click.option("--owner", default=DEFAULT_OWNER, show_default=True,
              help="Project owning the namespaces whose file names no owner.")
@click.option("--replace", is_flag=True,
              help="Make each namespace exactly what its file says: remove the objects, properties, tags and "
                   "resource type associations the file does not name.")
@with_appcontext
def load(folder, owner, replace):
    """Load every *.json file of FOLDER (one namespace each); loading again updates them.

    All files are checked before anything is written, and written in one transaction.
    Glance's own files are in its source tree under etc/metadefs/.
    """
    with connected():
        try:
            results = load_definitions(folder, owner=owner, replace=replace)
        except LoadError as exc:
            raise click.ClickException(f"nothing loaded: {exc}") from None
    for result in results:
        held = ", ".join(f"{count} {key.replace('_', ' ')}" for key, count in result.counts.items())
        removed = f"; removed {result.removed} not in the file" if result.removed else ""
        click.echo(f"{'created' if result.created else 'updated'}\t{result.namespace}\t({held}{removed})")
    created = sum(result.created for result in results)
    click.echo(f"loaded {len(results)} namespace(s) from {folder}: {created} created, "
               f"{len(results) - created} updated")
