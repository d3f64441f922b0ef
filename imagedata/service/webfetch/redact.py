"""URLs as they may be shown: without credentials or token-like query values."""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "***"
# Query keys that carry secrets: AWS/GCS/Azure presigned URLs, OAuth, API keys, passwords.
SECRET_KEY_RE = re.compile(r"sig|token|secret|pass|pwd|key|auth|cred|session|code", re.IGNORECASE)
# A long run of base64/hex characters is a token whatever its key is called.
TOKEN_VALUE_RE = re.compile(r"^[A-Za-z0-9+/=_%-]{32,}$")


def redact_url(url: str) -> str:
    """``url`` with its user:password, its secret-looking query values and its fragment hidden.

    Spaces and control characters are percent-encoded, so the result is one printable line.
    """
    url = re.sub(r"[\x00-\x20\x7f]", lambda m: f"%{ord(m.group()):02X}", url)
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{HIDDEN}@{netloc.rpartition('@')[2]}"
        query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, HIDDEN if parts.fragment else ""))
    except ValueError:  # not even a URL: hide everything that could be a secret
        text = re.sub(r"//[^/?#]*@", f"//{HIDDEN}@", url)
        return re.sub(r"[?#].*", f"?{HIDDEN}", text, flags=re.DOTALL)


def _redact_pair(pair: str) -> str:
    key, sep, value = pair.partition("=")
    if not sep:
        return HIDDEN if TOKEN_VALUE_RE.match(key) else key
    if SECRET_KEY_RE.search(key) or TOKEN_VALUE_RE.match(value):
        return f"{key}={HIDDEN}"
    return pair
