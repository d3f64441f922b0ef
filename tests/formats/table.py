"""The corpus table: every case with our verdict, the reference's and what qemu-img does with it.

Print it with ``.venv/bin/python -m tests.formats.table`` (builds the corpus in a temporary
folder; add ``--markdown`` for a table to paste into a note).
"""
from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

from tests.formats import corpus, judges


@dataclasses.dataclass
class Row:
    """One case judged three ways."""

    case: corpus.Case
    ours: judges.Verdict
    reference: judges.Verdict
    qemu: judges.QemuView

    @property
    def declared(self) -> str:
        """disk_format (and container_format when it is not bare)."""
        c = self.case
        return c.disk_format if c.container_format == "bare" else f"{c.disk_format}/{c.container_format}"

    @property
    def reaches_outside(self) -> bool:
        """Whether qemu-img opens other files for this image or copies outside bytes into it."""
        return bool(self.qemu.outside) or bool(self.qemu.leaked)


def judge(root: Path, cases: list[corpus.Case]) -> list[Row]:
    """Run the three judges over the corpus."""
    return [Row(c, judges.ours(root, c), judges.reference(root, c), judges.qemu(root, c)) for c in cases]


def render(rows: list[Row], reasons: dict[str, str], markdown: bool = False) -> str:
    """The table as text; rows where we and the reference differ are marked and explained below."""
    header = ("case", "declared", "ours", "reference", "qemu-img")
    lines, notes = [], []
    for row in rows:
        mark = "≠ " if row.ours.accepted != row.reference.accepted or (
            row.ours.accepted and row.ours.virtual_size != row.reference.virtual_size) else ""
        cells = (mark + row.case.name, row.declared, _short(row.ours), _short(row.reference), str(row.qemu))
        lines.append(cells)
        if mark:
            notes.append(f"- {row.case.name}: {reasons.get(row.case.name, '(no reason recorded)')}")
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in lines]
    else:
        widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
        out = ["  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in [header, *lines]]
    return "\n".join(out + ["", f"{len(rows)} cases, {len(notes)} disagreements with the reference:", *notes])


def _short(verdict: judges.Verdict) -> str:
    text = str(verdict)
    return text if len(text) <= 70 else text[:67] + "..."


def main(argv: list[str]) -> int:
    """Build the corpus, judge it, print the table."""
    from tests.formats.test_differential import DISAGREEMENTS
    with tempfile.TemporaryDirectory(prefix="corpus-") as folder:
        root = Path(folder)
        rows = judge(root, corpus.build(root))
        reasons = {name: reason for name, (_we_accept, reason) in DISAGREEMENTS.items()}
        print(render(rows, reasons, markdown="--markdown" in argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
