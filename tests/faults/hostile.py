"""Hypothesis strategies for client text the service must refuse (or store exactly).

Unstorable text has a NUL or a lone UTF-16 surrogate somewhere in otherwise ordinary text;
only NUL can travel in a URL (a surrogate has no UTF-8 form to percent-encode). ``inject``
turns any generated JSON value, query or path into a strategy that sometimes carries such text
in one string or object key, for schemathesis's ``flatmap_*`` hooks.
"""
from __future__ import annotations

from hypothesis import strategies as st

from imagedata.schemas import MAX_NAME, MAX_PROPERTY_VALUE

NUL = st.just("\x00")
SURROGATE = st.characters(categories=["Cs"])
# Text the databases store as given: any Unicode scalar but NUL (control characters, astral planes).
STORABLE = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)


def containing(bad) -> st.SearchStrategy[str]:
    """Ordinary text with one character from ``bad`` at a random place (possibly repeated)."""
    return st.builds(lambda head, char, times, tail: head + char * times + tail,
                     STORABLE, bad, st.integers(1, 3), STORABLE)


UNSTORABLE = containing(st.one_of(NUL, SURROGATE))
UNSTORABLE_IN_URL = containing(NUL)


def longer_than(limit: int) -> st.SearchStrategy[str]:
    """Text just over ``limit`` characters (built by repetition: hypothesis draws short)."""
    return st.builds(lambda piece, extra: (piece * (limit // len(piece) + 2))[:limit + extra],
                     st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8),
                     st.integers(1, 64))


OVERLONG_NAME = longer_than(MAX_NAME)
OVERLONG_VALUE = longer_than(MAX_PROPERTY_VALUE)


def _string_places(value, path=()):
    """Paths to every string in a JSON value: ("key", path) for object keys, ("value", path) for strings."""
    if isinstance(value, str):
        yield ("value", path)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield ("key", (*path, key))
            yield from _string_places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_places(item, (*path, index))


def _replaced(value, place, text):
    kind, path = place
    if not path:
        return text if kind == "value" else value
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        if kind == "key" and not rest:
            return {(text if k == head else k): v for k, v in value.items()}
        return {k: (_replaced(v, (kind, rest), text) if k == head else v) for k, v in value.items()}
    return [(_replaced(v, (kind, rest), text) if i == head else v) for i, v in enumerate(value)]


def inject(value, bad=UNSTORABLE, keys: bool = True) -> st.SearchStrategy:
    """``value`` as generated, or with one of its strings (or, with ``keys``, object keys) replaced by ``bad`` text."""
    places = [place for place in _string_places(value) if keys or place[0] == "value"]
    if not places:
        return st.just(value)
    return st.one_of(st.just(value), st.tuples(st.sampled_from(places), bad).map(
        lambda pair: _replaced(value, pair[0], pair[1])))
