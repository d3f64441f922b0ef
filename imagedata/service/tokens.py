"""API tokens: random secrets shown once; only their SHA-256 is stored."""
from __future__ import annotations

import datetime
import hashlib
import secrets
from urllib.parse import unquote

from imagedata.db import prepared
from imagedata.models import Token, utcnow
from imagedata.policy import Caller

TOKEN_PREFIX = "idt_"


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


def caller_for_token(header_value: str | None) -> Caller | None:
    """The caller a presented token stands for, or None if missing, unknown, revoked or expired."""
    if not header_value:
        return None
    secret = unquote(header_value.strip())  # glanceclient percent-encodes the token
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128:
        return None
    rows = prepared(Token, "token-by-hash", lambda digest: Token.select().where(Token.token_hash == digest),
                    digest=hash_token(secret))
    row = next(iter(rows), None)
    if row is None or row.revoked or (row.expires_at is not None and row.expires_at <= utcnow()):
        return None
    return Caller.with_roles(row.user_id, row.project_id, row.roles.split(","))


def list_tokens(project: str | None = None) -> list[Token]:
    """Tokens, newest first, optionally for one project."""
    query = Token.select().order_by(Token.created_at.desc(), Token.id.desc())
    if project:
        query = query.where(Token.project_id == project)
    return list(query)


def revoke_token(token_id: str) -> bool:
    """Revoke a token by its public id; False if there is no such token."""
    return Token.update(revoked=True).where(Token.token_id == token_id).execute() == 1
