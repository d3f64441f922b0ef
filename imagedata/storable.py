"""Client text the metadata database can store: no NUL character, no lone UTF-16 surrogate.

Both databases keep text as UTF-8. A JSON string may hold a lone surrogate escape such as
"\\ud800", which has no UTF-8 form (SQLite's and psycopg2's encoders raise), and PostgreSQL
text cannot hold NUL at all (SQLite can, so the two would disagree). Every client string is
checked once where it enters: each parsed JSON body (keys included) in ``check_json`` and the
query, path and header strings of every request in ``check_text``. Lengths are the schemas'
business (``imagedata.schemas``), not this module's.
"""
from __future__ import annotations

import re

from imagedata.errors import BadRequest

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SHOWN = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
SHOW_AT_MOST = 60


def problem(text: str) -> str | None:
    """What makes ``text`` unstorable, or None when it can be stored."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    return "contains a NUL character" if found.group() == "\x00" else "contains an unpaired UTF-16 surrogate"


def printable(text: str) -> str:
    """``text`` shortened, with control characters and surrogates escaped, for a message."""
    short = text if len(text) <= SHOW_AT_MOST else text[:SHOW_AT_MOST] + "..."
    return _SHOWN.sub(lambda m: f"\\u{ord(m.group()):04x}", short)


def check_text(where: str, text: str) -> None:
    """400 naming ``where`` when ``text`` cannot be stored."""
    reason = problem(text)
    if reason:
        raise BadRequest(f"Invalid text in {where}: '{printable(text)}' {reason}.")


def check_json(document) -> None:
    """400 naming an unstorable string (an object key or any value) of a parsed JSON document."""
    pending = [(document, "")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            check_text(f"the request body at {path or '/'}", value)
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(f"the request body, a key in {path or '/'}", key)
                pending.append((item, f"{path}/{printable(key)}"))
        elif isinstance(value, list):
            pending.extend((item, f"{path}/{index}") for index, item in enumerate(value))
