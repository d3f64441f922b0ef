"""Signed download links: a URL that downloads one image's data without a token, for a while.

A link is ``<payload>.<signature>``: the payload (base64url JSON) names the image, the
expiry, who made it (project, user, roles) and, in token mode, the id of the token that
made it; the signature is an HMAC-SHA256 of the payload under the deployment's link key
(IMAGEDATA_LINK_SECRET). Nothing is stored per link. A download through a link is refused
when any byte was changed, after the expiry, while the image is deactivated, once the image
is deleted (ids are never reused, so for good), and once the token that made it is revoked
or expired (token mode: the token's row is read on every use). With Keystone the token
cannot be asked about later (imagedata never keeps it), so a link never outlives the
Keystone token that made it: its expiry is capped at the token's.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac
import json
import os
import secrets

from imagedata.config import Settings
from imagedata.errors import BadRequest, Conflict, Forbidden, ImageNotFound, ServiceUnavailable
from imagedata.models import Token, utcnow
from imagedata.policy import Caller
from imagedata.service import Services
from imagedata.service.download import DownloadRequest, prepare_download
from imagedata.service.images import find_image

DEFAULT_SECONDS = 900
KEY_FILE = "link-secret"
SIGNING_CONTEXT = b"imagedata-download-link-v1\n"
NOT_VALID = "This download link is not valid: it was changed, or signed with another key. Ask for a new one."


@dataclasses.dataclass(frozen=True)
class Issuer:
    """Who asks for a link: the caller, and the token they used (if the service knows it)."""

    caller: Caller
    token_id: str | None = None  # token mode: the imagedata token's public id
    expires_at: datetime.datetime | None = None  # when the token that asks stops working


@dataclasses.dataclass(frozen=True)
class Link:
    """A new link: the path to append to the service's URL, and when it stops working."""

    path: str
    expires_at: datetime.datetime
    expires_in: int


def link_key(settings: Settings) -> bytes:
    """The key links are signed with: IMAGEDATA_LINK_SECRET, else a random key of this host.

    The host's key is made once and kept in the data folder (mode 0600), so every worker and
    restart of one host shares it. Several hosts would each make their own, so a deployment
    on PostgreSQL (the multi-host setup) must set IMAGEDATA_LINK_SECRET to use links.
    """
    if settings.link_secret:
        return settings.link_secret.encode()
    if not settings.database_url.startswith("sqlite"):
        raise ServiceUnavailable("Download links are off: set IMAGEDATA_LINK_SECRET (the same on every host) "
                                 "to enable them on a deployment with a shared database.")
    path = os.path.join(settings.data_dir, KEY_FILE)
    if not os.path.exists(path):
        # Written whole under a temporary name, then linked into place: a worker racing this
        # one either wins or reads the winner's key, never half a file.
        temporary = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
                f.flush()
                os.fsync(f.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    with open(path) as f:
        key = f.read().strip()
    return key.encode()


def create_link(svc: Services, issuer: Issuer, image_id: str, expires_in: int | None) -> Link:
    """A link to an active image the issuer may download now, valid ``expires_in`` seconds."""
    seconds = DEFAULT_SECONDS if expires_in is None else expires_in
    limit = svc.settings.link_max_seconds
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= limit:
        raise BadRequest(f"expires_in must be a whole number of seconds from 1 to {limit}.")
    # The same checks as a download by the issuer (visibility, policy, deactivation, data).
    plan = prepare_download(svc, issuer.caller, DownloadRequest(image_id=image_id, head=True))
    if plan.status == 204:
        raise Conflict("The image has no data to download yet: links are made for active images.")
    now = utcnow()
    expires_at = now + datetime.timedelta(seconds=seconds)
    if issuer.expires_at is not None and issuer.expires_at < expires_at:
        expires_at = issuer.expires_at  # never outlive the token that asked
    caller = issuer.caller
    payload = {"i": image_id.lower(), "e": int(expires_at.replace(tzinfo=datetime.timezone.utc).timestamp()),
               "p": caller.project_id, "u": caller.user_id, "r": sorted(caller.roles), "t": issuer.token_id}
    encoded = _b64(json.dumps(payload, separators=(",", ":")).encode())
    link = f"{encoded}.{_b64(_sign(link_key(svc.settings), encoded))}"
    return Link(f"/v2/images/{image_id.lower()}/file/links/{link}", expires_at,
                max(int((expires_at - now).total_seconds()), 0))


def resolve_link(svc: Services, image_id: str, link: str) -> Caller:
    """The identity a link downloads with, once every check passed; raises otherwise."""
    payload = _verified_payload(link_key(svc.settings), link)
    if payload is None or payload.get("i") != image_id.lower():
        raise Forbidden(NOT_VALID)
    expires = payload.get("e")
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    if not isinstance(expires, int) or expires <= now:
        raise Forbidden("This download link has expired. Ask for a new one.")
    caller = _issuer_now(payload)
    image = find_image(image_id)
    if image is None:
        raise ImageNotFound(image_id)
    if image.status == "deactivated":
        raise Forbidden("The requested image has been deactivated. Image data download is forbidden.")
    return caller


def _issuer_now(payload: dict) -> Caller:
    """Who made the link, as they are now: a revoked or expired token ends its links."""
    token_id = payload.get("t")
    if token_id is None:
        return Caller.with_roles(payload.get("u"), payload.get("p"), payload.get("r") or [])
    row = Token.get_or_none(Token.token_id == token_id)
    if row is None or row.revoked or (row.expires_at is not None and row.expires_at <= utcnow()):
        raise Forbidden("The token that made this download link has been revoked or has expired.")
    return Caller.with_roles(row.user_id, row.project_id, row.roles.split(","))


def _verified_payload(key: bytes, link: str) -> dict | None:
    encoded, dot, signature = link.partition(".")
    if not dot or len(link) > 2048:
        return None
    try:
        given = _unb64(signature)
        payload = json.loads(_unb64(encoded))
    except ValueError:
        return None
    if not hmac.compare_digest(given, _sign(key, encoded)) or not isinstance(payload, dict):
        return None
    return payload


def _sign(key: bytes, encoded: str) -> bytes:
    return hmac.new(key, SIGNING_CONTEXT + encoded.encode("ascii", "replace"), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not text.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

