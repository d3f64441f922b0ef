"""API tokens: random secrets shown once; only their SHA-256 is stored.

Each worker process keeps the tokens it validated in a small cache for
``TOKEN_CACHE_SECONDS`` (never past a token's expiry), so a burst of small requests
does not look the same token up again and again. The price: a token revoked with
``imagedata token revoke`` (another process) keeps working for at most that long
in the workers that saw it. Unknown, revoked and expired tokens are never cached.
"""
from __future__ import annotations

import datetime
import hashlib
import secrets
import threading
import time
from urllib.parse import unquote

from imagedata.db import prepared
from imagedata.errors import BadRequest
from imagedata.models import Token, utcnow
from imagedata.policy import Caller

TOKEN_PREFIX = "idt_"
TOKEN_CACHE_SECONDS = 5.0
TOKEN_CACHE_SIZE = 1024


class TokenCache:
    """Validated tokens of this process: token hash -> (caller, monotonic deadline)."""

    def __init__(self, seconds: float = TOKEN_CACHE_SECONDS, size: int = TOKEN_CACHE_SIZE):
        self.seconds = seconds
        self.size = size
        self.entries: dict[str, tuple[Caller, float]] = {}
        self.lock = threading.Lock()

    def get(self, digest: str) -> Caller | None:
        """The cached caller of a token hash, if still fresh."""
        entry = self.entries.get(digest)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            self.entries.pop(digest, None)
            return None
        return entry[0]

    def put(self, digest: str, caller: Caller, expires_at: datetime.datetime | None) -> None:
        """Remember a validated token until the cache lifetime or its expiry, whichever comes first."""
        lifetime = self.seconds
        if expires_at is not None:
            lifetime = min(lifetime, (expires_at - utcnow()).total_seconds())
        if lifetime <= 0:
            return
        with self.lock:
            while len(self.entries) >= self.size:
                self.entries.pop(next(iter(self.entries)), None)  # the oldest entry
            self.entries[digest] = (caller, time.monotonic() + lifetime)

    def clear(self) -> None:
        """Forget every token (after a revocation in this process)."""
        with self.lock:
            self.entries.clear()


CACHE = TokenCache()


def hash_token(secret: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(project: str, user: str | None = None, roles=("member", "reader"),
                 expires_in: int | None = None) -> tuple[Token, str]:
    """Create a token; returns the row and the secret (which is never stored)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + datetime.timedelta(seconds=expires_in) if expires_in else None
    row = Token.create(token_hash=hash_token(secret), token_id=secrets.token_hex(6),
                       user_id=user or f"user-{project}", project_id=project,
                       roles=",".join(r.strip().lower() for r in roles if r.strip()), expires_at=expires_at)
    return row, secret


def _digest_of(header_value: str | None) -> str | None:
    """The stored form of a presented token, or None when it cannot be one of ours."""
    if not header_value:
        return None
    secret = unquote(header_value.strip())  # glanceclient percent-encodes the token
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128:
        return None
    return hash_token(secret)


def caller_for_token(header_value: str | None) -> Caller | None:
    """The caller a presented token stands for, or None if missing, unknown, revoked or expired."""
    return check_token(header_value)[0]


def check_token(header_value: str | None) -> tuple[Caller | None, str]:
    """The caller a presented token stands for, or None and why not, for the log.

    The reason names the token by its public id when it is known, never by its secret.
    """
    if not header_value:
        return None, "no X-Auth-Token header"
    digest = _digest_of(header_value)
    if digest is None:
        return None, f"the X-Auth-Token is not an imagedata token (they start with {TOKEN_PREFIX})"
    caller = CACHE.get(digest)
    if caller is not None:
        return caller, ""
    rows = prepared(Token, "token-by-hash", lambda digest: Token.select().where(Token.token_hash == digest),
                    digest=digest)
    row = next(iter(rows), None)
    if row is None:
        return None, "unknown token"
    if row.revoked:
        return None, f"token {row.token_id} (project {row.project_id}) is revoked"
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None, f"token {row.token_id} (project {row.project_id}) expired at {row.expires_at:%Y-%m-%dT%H:%M:%SZ}"
    caller = Caller.with_roles(row.user_id, row.project_id, row.roles.split(","))
    CACHE.put(digest, caller, row.expires_at)
    return caller, ""


def find_token(header_value: str | None) -> Token | None:
    """The row of a presented token (revoked and expired ones included), or None."""
    digest = _digest_of(header_value)
    return None if digest is None else Token.get_or_none(Token.token_hash == digest)


def list_tokens(project: str | None = None) -> list[Token]:
    """Tokens, newest first, optionally for one project."""
    query = Token.select().order_by(Token.created_at.desc(), Token.id.desc())
    if project:
        query = query.where(Token.project_id == project)
    return list(query)


def revoke_token(token_id: str) -> bool:
    """Revoke a token by its public id; False if there is no such token."""
    revoked = Token.update(revoked=True).where(Token.token_id == token_id).execute() == 1
    CACHE.clear()
    return revoked


def describe(row: Token) -> dict:
    """A token as admins see it (never its secret, which is not stored)."""
    expires = f"{row.expires_at:%Y-%m-%dT%H:%M:%SZ}" if row.expires_at else None
    return {"id": row.token_id, "project": row.project_id, "user": row.user_id,
            "roles": [role for role in row.roles.split(",") if role], "created_at": f"{row.created_at:%Y-%m-%dT%H:%M:%SZ}",
            "expires_at": expires, "revoked": bool(row.revoked)}


def check_request(body) -> tuple[str, str | None, list[str], int | None]:
    """(project, user, roles, expires_in) of a token request body; 400 when malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("project"), str) or not body["project"].strip():
        raise BadRequest('A token needs a "project".')
    user, roles, expires_in = body.get("user") or None, body.get("roles", ["member", "reader"]), body.get("expires_in")
    if isinstance(roles, str):
        roles = roles.split(",")
    if (user is not None and not isinstance(user, str)) or not isinstance(roles, list) \
            or not all(isinstance(role, str) for role in roles):
        raise BadRequest('"user" is a string and "roles" a list of strings.')
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, int)
                                   or not 1 <= expires_in <= 100 * 365 * 86400):
        raise BadRequest('"expires_in" is a whole number of seconds.')
    if len(body["project"]) > 255 or (user and len(user) > 255) or len(",".join(roles)) > 1024:
        raise BadRequest("A token's project and user are at most 255 characters, its roles 1024.")
    return body["project"].strip(), user, roles, expires_in
