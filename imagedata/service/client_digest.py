"""Digests a client sends with its upload (Content-MD5, RFC 9530 Repr-Digest), and the
Repr-Digest a download answers with.

The server checks a client's digest of the whole image against what it computed before
the image becomes active: a mismatch is 400 and nothing is kept.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re

from imagedata.errors import BadRequest

# RFC 9530 algorithm names -> hashlib names. Others are ignored, as the RFC asks.
ALGORITHMS = {"md5": "md5", "sha-256": "sha256", "sha-512": "sha512"}
HASHLIB_TO_HTTP = {v: k for k, v in ALGORITHMS.items()}
MEMBER_RE = re.compile(r"^\s*([a-z0-9_*.-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*$")


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not valid base64.") from None


def parse_client_digests(content_md5: str | None, repr_digest: str | None) -> dict[str, bytes]:
    """The digests the client vouches for, as {hashlib name: raw digest}; 400 when malformed."""
    wanted: dict[str, bytes] = {}
    if content_md5 is not None:
        text = content_md5.strip()
        raw = bytes.fromhex(text) if re.fullmatch(r"[0-9a-fA-F]{32}", text) else _b64(text, "Content-MD5")
        if len(raw) != 16:
            raise BadRequest("Content-MD5 must be the base64 (or hex) md5 of the whole image.")
        wanted["md5"] = raw
    for member in filter(str.strip, (repr_digest or "").split(",")):
        match = MEMBER_RE.match(member)
        if not match:
            raise BadRequest("Repr-Digest must look like 'sha-256=:<base64>:' (RFC 9530).")
        name, value = match.group(1).lower(), match.group(2)
        if name not in ALGORITHMS:
            continue
        raw = _b64(value, f"Repr-Digest {name}")
        if len(raw) != hashlib.new(ALGORITHMS[name]).digest_size:
            raise BadRequest(f"Repr-Digest {name} has the wrong length.")
        if ALGORITHMS[name] in wanted and wanted[ALGORITHMS[name]] != raw:
            raise BadRequest(f"Content-MD5 and Repr-Digest {name} disagree.")
        wanted[ALGORITHMS[name]] = raw
    return wanted


def check_client_digests(wanted: dict[str, bytes], computed: dict[str, str]) -> None:
    """400 naming both values when a digest the client sent is not what was received."""
    for algo, raw in wanted.items():
        got = computed[algo]
        if raw.hex() != got:
            name = HASHLIB_TO_HTTP[algo]
            raise BadRequest(f"The image data does not match the client's {name} digest: the client sent "
                             f"{base64.b64encode(raw).decode()} ({raw.hex()}), the server received data "
                             f"with {base64.b64encode(bytes.fromhex(got)).decode()} ({got}).")


class ExtraDigests:
    """The client's digests that the upload does not compute anyway, computed beside it."""

    def __init__(self, wanted: dict[str, bytes], covered: tuple[str, ...]):
        self.hashes = {algo: hashlib.new(algo) for algo in wanted if algo not in covered}

    def update(self, data) -> None:
        """Feed the next piece of the image."""
        for h in self.hashes.values():
            h.update(data)

    def hexdigests(self) -> dict[str, str]:
        """{algo: hex digest} of everything fed."""
        return {algo: h.hexdigest() for algo, h in self.hashes.items()}


def repr_digest_header(os_hash_algo: str | None, os_hash_value: str | None, checksum: str | None) -> str | None:
    """The Repr-Digest of a stored image: its os_hash digest and its md5, in RFC 9530 form."""
    members = []
    name = HASHLIB_TO_HTTP.get(os_hash_algo or "")
    if name and os_hash_value:
        members.append(f"{name}=:{base64.b64encode(bytes.fromhex(os_hash_value)).decode()}:")
    if checksum:
        members.append(f"md5=:{base64.b64encode(bytes.fromhex(checksum)).decode()}:")
    return ", ".join(members) or None
