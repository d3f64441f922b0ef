"""The corpus, built once per test run, and its three-way verdicts."""
from __future__ import annotations

import shutil

import pytest

from tests.formats import corpus, table


@pytest.fixture(scope="session")
def corpus_root(tmp_path_factory):
    """The folder holding every corpus file (qemu-img and xorriso are required: .ci/run installs them)."""
    missing = [tool for tool in ("qemu-img", "xorriso") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the disk-image corpus needs {', '.join(missing)} (Debian: qemu-utils, xorriso; see .ci/run)")
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="session")
def corpus_cases(corpus_root) -> list[corpus.Case]:
    """Every case of the corpus."""
    return corpus.build(corpus_root)


@pytest.fixture(scope="session")
def corpus_rows(corpus_root, corpus_cases) -> dict[str, table.Row]:
    """Each case judged by us, the reference and qemu-img, by case name."""
    return {row.case.name: row for row in table.judge(corpus_root, corpus_cases)}
