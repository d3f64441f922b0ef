"""The `imagedata` command: database, tokens, quotas, recovery, scrubbing and verification."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from imagedata import metrics
from imagedata.cli.verify import verify
from imagedata.db import database
from imagedata.errors import ImageDataError
from imagedata.migrations import SchemaError, check_schema, sync_schema
from imagedata.service import lifecycle
from imagedata.service.imports.takeover import take_over_imports
from imagedata.service.quotas import set_quota, usage_report
from imagedata.service.scrub import locate as find_image_data
from imagedata.service.scrub import scrub as run_scrub
from imagedata.service.links import Issuer, create_link
from imagedata.policy import Caller
from imagedata.service.tokens import create_token, list_tokens, revoke_token


def _create_app():
    from imagedata.app import create_app

    return create_app()


def main() -> None:
    """Entry point of the console script."""
    # Before anything records a metric: findings of scrub, verify and recover reach the
    # server's /metrics when it runs on this host.
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "cli")
    metrics.share_with_server(os.environ, command)
    cli = FlaskGroup(create_app=_create_app, add_default_commands=True, add_version_option=False,
                     help="imagedata: image-data service speaking the OpenStack Image API v2.")
    cli.main(prog_name="imagedata")


def register_commands(app: Flask) -> None:
    """Attach every command to the app's CLI group."""
    app.cli.add_command(db_sync)
    app.cli.add_command(token)
    app.cli.add_command(quota)
    app.cli.add_command(recover)
    app.cli.add_command(scrub)
    app.cli.add_command(locate)
    app.cli.add_command(verify)
    app.cli.add_command(link)
    from imagedata.cli.metadefs import metadefs  # imports this module's ``connected``

    app.cli.add_command(metadefs)


@click.command("db-sync")
@with_appcontext
def db_sync():
    """Create the database schema, or upgrade it to this version (idempotent)."""
    try:
        before, after = sync_schema()
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    done = ("created" if before is None else "already up to date" if before == after
            else f"upgraded from version {before}")
    click.echo(f"database ready at schema version {after} ({done}): "
               f"{_safe_url(current_app.config['IMAGEDATA'].database_url)}")


@contextmanager
def connected():
    """A database connection for one command, on the schema this code needs."""
    with database.connection_context():
        try:
            check_schema()
        except SchemaError as exc:
            raise click.ClickException(str(exc)) from None
        yield


def _safe_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


@click.group()
def token():
    """Create, list and revoke API tokens."""


@token.command("create")
@click.option("--project", required=True, help="Project the token acts for (image owner).")
@click.option("--user", default=None, help="User id (default: user-<project>).")
@click.option("--roles", default="member,reader", show_default=True, help="Comma-separated roles.")
@click.option("--expires-in", type=click.IntRange(min=1, max=100 * 365 * 86400), default=None,
              help="Lifetime in seconds.")
def token_create(project, user, roles, expires_in):
    """Create a token and print it (last line of stdout; it is shown only once)."""
    with connected():
        row, secret = create_token(project, user, roles.split(","), expires_in)
    click.echo(f"token id {row.token_id}: project={row.project_id} user={row.user_id} roles={row.roles}"
               + (f" expires={row.expires_at:%Y-%m-%dT%H:%M:%SZ}" if row.expires_at else ""), err=True)
    click.echo(secret)


@token.command("list")
@click.option("--project", default=None)
def token_list(project):
    """List tokens (ids and owners; secrets are never stored)."""
    with connected():
        for row in list_tokens(project):
            state = "revoked" if row.revoked else "active"
            expires = f"{row.expires_at:%Y-%m-%dT%H:%M:%SZ}" if row.expires_at else "never"
            click.echo(f"{row.token_id}\t{row.project_id}\t{row.user_id}\t{row.roles}\t{state}\texpires={expires}")


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id):
    """Revoke a token by its id."""
    with connected():
        if not revoke_token(token_id):
            raise click.ClickException(f"no token with id {token_id}")
    click.echo(f"revoked {token_id}")


@click.group()
def quota():
    """Show and set per-project quotas."""


@quota.command("set")
@click.option("--project", required=True)
@click.option("--image-size-total", type=click.IntRange(min=0, max=2**63 - 1), default=None,
              help="Bytes; 0 = unlimited.")
@click.option("--image-count-total", type=click.IntRange(min=0, max=2**31 - 1), default=None)
@click.option("--image-count-uploading", type=click.IntRange(min=0, max=2**31 - 1), default=None)
@with_appcontext
def quota_set(project, image_size_total, image_count_total, image_count_uploading):
    """Override a project's limits."""
    with connected():
        set_quota(project, image_size_total=image_size_total, image_count_total=image_count_total,
                  image_count_uploading=image_count_uploading)
    click.echo(f"quota updated for {project}")
    _print_usage(project)


@quota.command("show")
@click.option("--project", required=True)
@with_appcontext
def quota_show(project):
    """Print a project's limits and usage."""
    _print_usage(project)


def _print_usage(project: str) -> None:
    with connected():
        report = usage_report(current_app.config["IMAGEDATA"], project)["usage"]
    for name, values in report.items():
        limit = "unlimited" if values["limit"] < 0 else values["limit"]
        click.echo(f"{name}\tlimit={limit}\tusage={values['usage']}")


@click.command()
@with_appcontext
def recover():
    """Return images whose upload died to `queued` and remove their temporary files; run
    imports whose host stopped to their end."""
    services = current_app.extensions["imagedata"]
    with connected():
        recovered = lifecycle.recover(services)
        expired = lifecycle.expire_kept(services)
        imports = take_over_imports(services, background=False)
    metrics.count_recoveries(len(recovered))
    click.echo(f"recovered {len(recovered)} upload(s)" + "".join(f"\n  {i}" for i in recovered))
    click.echo(f"expired {len(expired)} kept partial upload(s)" + "".join(f"\n  {i}" for i in expired))
    click.echo(f"took over and ran {len(imports)} import(s)" + "".join(f"\n  {i}" for i in imports))


@click.command()
@click.option("--fix", is_flag=True, help="Remove orphans and flag broken images (default: report only).")
@with_appcontext
def scrub(fix):
    """Report orphan files in the stores and active images whose data is missing or wrong."""
    services = current_app.extensions["imagedata"]
    with connected():
        findings = run_scrub(services, fix=fix)
    metrics.record_scrub(findings)
    for f in findings:
        action = (" removed" if f.kind == "orphan" else " flagged") if f.fixed else ""
        click.echo(f"{f.kind}\t{f.store_id}\t{f.name}\t{f.reason}{action}")
    orphans = sum(f.kind == "orphan" for f in findings)
    broken = sum(f.kind == "broken" for f in findings)
    click.echo(f"{orphans} orphan(s), {broken} broken image(s)" + ("" if fix else "; run with --fix to repair"))
    if findings and not fix:
        raise SystemExit(1)


@click.command()
@click.argument("image_id")
@with_appcontext
def locate(image_id):
    """Show an image's status, store and data file path (operators only; never exposed by the API)."""
    services = current_app.extensions["imagedata"]
    with connected():
        found = find_image_data(services, image_id)
    if found is None:
        raise click.ClickException(f"no image {image_id}")
    for key, value in found:
        click.echo(f"{key}\t{'' if value is None else value}")


@click.group()
def link():
    """Signed download links (URLs that download one image without a token, for a while)."""


@link.command("create")
@click.argument("image_id")
@click.option("--expires-in", type=int, default=None, help="Seconds the link works (default 900).")
@click.option("--endpoint", default=None,
              help="Base URL of the service (default: IMAGEDATA_PUBLIC_ENDPOINT, else http://IMAGEDATA_BIND).")
@with_appcontext
def link_create(image_id, expires_in, endpoint):
    """Print a download link to an active image (made by the operator: revoked by rotating
    IMAGEDATA_LINK_SECRET, deleting or deactivating the image, or when it expires)."""
    services = current_app.extensions["imagedata"]
    operator = Issuer(Caller.with_roles("imagedata-operator", None, ["admin"]))
    try:
        with connected():
            made = create_link(services, operator, image_id, expires_in)
    except ImageDataError as exc:
        raise click.ClickException(str(exc)) from None
    bind = os.environ.get("IMAGEDATA_BIND", "127.0.0.1:9292").split(",")[0].strip()
    base = (endpoint or services.settings.public_endpoint or f"http://{bind}").rstrip("/")
    click.echo(f"expires {made.expires_at:%Y-%m-%dT%H:%M:%SZ} ({made.expires_in} s)", err=True)
    click.echo(f"{base}{made.path}")
