"""Listing parameters (order, limit) and keyset paging: the rows after a marker row."""
from __future__ import annotations

from imagedata.errors import BadRequest


def after(columns: list, values: list, descending: bool):
    """The condition of the rows after the row holding ``values`` when ordered by ``columns``.

    ``(a, b) after (x, y)`` is ``a < x or (a = x and b < y)`` descending (``>`` ascending); the last
    column must be unique, so that no two rows tie.
    """
    condition = None
    for index, (column, value) in enumerate(zip(columns, values)):
        step = column < value if descending else column > value
        for earlier, earlier_value in zip(columns[:index], values[:index]):
            step &= earlier == earlier_value
        condition = step if condition is None else condition | step
    return condition


def ordering(columns: list, descending: bool) -> list:
    """The ORDER BY terms of ``columns``."""
    return [column.desc() if descending else column.asc() for column in columns]


def parse_sort_dir(args: dict) -> str:
    """The ``sort_dir`` parameter: asc or desc (the default); 400 otherwise."""
    direction = args.get("sort_dir", "desc")
    if direction not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {direction}")
    return direction


def parse_sort_key(args: dict, allowed: tuple) -> str:
    """The ``sort_key`` parameter, one of ``allowed`` (default created_at). Glance: 500 for others."""
    key = args.get("sort_key", "created_at")
    if key not in allowed:
        raise BadRequest(f"Invalid sort key: {key}. It must be one of: {', '.join(allowed)}")
    return key


def parse_limit(args: dict, minimum: int = 0) -> int | None:
    """The ``limit`` parameter as an integer of at least ``minimum``, or None when absent (Glance's words)."""
    if "limit" not in args:
        return None
    try:
        limit = int(args["limit"])
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if limit < minimum:
        raise BadRequest("limit param must be positive")
    return limit
