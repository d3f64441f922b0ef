"""Commands the documentation shows, read from it so the tests run them as written."""
from __future__ import annotations

import os

from tests.e2e.server import REPO


def read_doc(path: str) -> str:
    """A documentation file of the repository (README.rst, docs/*.rst)."""
    with open(os.path.join(REPO, path)) as f:
        return f.read()


def indented_block(text: str) -> str:
    """The lines of a literal block at the start of ``text``, up to the first line that is not indented."""
    lines = []
    for line in text.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def literal_block_after(text: str, marker: str) -> str:
    """The first literal block (``::`` then indented lines) after ``marker``."""
    rest = text[text.index(marker):]
    return indented_block(rest[rest.index("::\n\n") + 4:])
