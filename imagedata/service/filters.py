"""Glance's filter language for GET /v2/images: query parameters to one SQL condition.

What a parameter means (Glance 33's answers, measured on the real service):

- ``name``, ``id``, ``status``, ``container_format``, ``disk_format``: ``VALUE`` or ``eq:VALUE``
  for an exact match, ``in:A,B,...`` for any of a list (``"quoted, values"`` may hold commas);
  any other ``OP:`` prefix is 400. A value that is itself an ISO 8601 time is taken whole.
- ``created_at``, ``updated_at``: ``[OP:]TIME`` with OP one of eq, neq, gt, gte, lt, lte.
- ``size_min``/``size_max`` (and ``_min``/``_max`` on the other integer columns): bounds.
- ``size``, ``virtual_size``, ``min_ram``, ``min_disk``: numeric equality (``03``, ``3.0`` and
  ``1e1`` are numbers; anything else matches nothing); ``checksum``, ``os_hash_value``,
  ``os_hash_algo``, ``owner``: exact text.
- ``protected`` (exactly ``true``/``false``), ``os_hidden`` (either case; default false).
- ``tag``: repeatable, every tag must be present. Any other name filters on an extra property.

When a parameter is repeated the last value counts (Glance reads a multi-dict that way).
"""
from __future__ import annotations

import datetime
import decimal
import re

from peewee import Expression

from imagedata.errors import BadRequest
from imagedata.models import Image, ImageProperty, ImageTag

MAX_INT64 = 2**63 - 1
LIST_COLUMNS = ("name", "id", "status", "container_format", "disk_format")
TIME_COLUMNS = ("created_at", "updated_at")
NUMBER_COLUMNS = ("size", "virtual_size", "min_ram", "min_disk")
TEXT_COLUMNS = ("checksum", "os_hash_value", "os_hash_algo", "owner")
# Parameters that are not filters, or are read elsewhere (visibility, member_status).
NOT_FILTERS = {"limit", "marker", "sort", "sort_key", "sort_dir", "member_status", "visibility", "tag",
               "changes-since", "deleted"}
NOTHING = Expression(1, "=", 0)
EVERYTHING = Expression(1, "=", 1)

# ISO 8601 as Glance accepts it: a year, optionally month and day (with or without dashes),
# then optionally a time (hours, minutes, seconds, a fraction) and a zone (Z or an offset).
_ISO_TIME = re.compile(r"""
    (?P<year>\d{4})
    (?: (?: -(?P<month_d>\d{1,2}) | (?P<month>\d{2})(?!$) )
        (?: (?: -(?P<day_d>\d{1,2}) | (?P<day>\d{2}) )
            (?: [ T](?P<hour>\d{2})
                (?: :?(?P<minute>\d{2}) )?
                (?: :?(?P<second>\d{1,2}) (?: [.,](?P<fraction>\d+) )? )?
                (?P<zone> Z | (?P<sign>[-+])(?P<zone_hour>\d{2}) :? (?P<zone_minute>\d{2})? )?
            )?
        )?
    )?$""", re.VERBOSE)
# A text that SQLite (Glance's test database) would compare as a number.
_NUMBER = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$")
# One item of an `in:` list: a double-quoted string (backslash escapes kept), a bare run
# without commas, or an empty item between two commas.
_LIST_ITEM = re.compile(r'"((?:[^"\\]|\\.)*)",?|([^,]+),?|,')


def parse_time(text: str) -> datetime.datetime:
    """A naive UTC datetime from ISO 8601 text (no zone means UTC); ValueError if it is not one."""
    found = _ISO_TIME.match(text)
    if not found:
        raise ValueError(text)
    part = found.groupdict()

    def number(*names, default=0):
        return next((int(part[n]) for n in names if part[n] is not None), default)

    fraction = (part["fraction"] or "0")[:6].ljust(6, "0")
    moment = datetime.datetime(number("year"), number("month_d", "month", default=1),
                               number("day_d", "day", default=1), number("hour"), number("minute"),
                               number("second"), int(fraction))
    if part["sign"]:
        offset = datetime.timedelta(hours=number("zone_hour"), minutes=number("zone_minute"))
        moment -= offset if part["sign"] == "+" else -offset
    return moment


def split_operator(expression: str) -> tuple[str, str]:
    """(operator, value) of ``OP:VALUE``; ``eq`` when there is no operator or the whole is a time."""
    operator, sep, value = expression.partition(":")
    if not sep:
        return "eq", expression
    try:
        parse_time(expression)
    except ValueError:
        return operator, value
    return "eq", expression


def check_quotes(value: str) -> None:
    """400 unless every unescaped double quote opens after a comma and closes before one."""
    opened = False
    for i, char in enumerate(value):
        if char != '"' or (i and value[i - 1] == "\\"):
            continue
        if not opened and i and value[i - 1] != ",":
            raise BadRequest(f"Invalid filter value {value}. There is no comma before opening quotation mark.")
        if opened and i + 1 != len(value) and value[i + 1] != ",":
            raise BadRequest(f"Invalid filter value {value}. There is no comma after closing quotation mark.")
        opened = not opened
    if opened:
        raise BadRequest(f"Invalid filter value {value}. The quote is not closed.")


def split_list(value: str) -> list[str]:
    """The items of an ``in:`` list: comma-separated, double quotes around items holding commas."""
    check_quotes(value)
    return [quoted or bare for quoted, bare in _LIST_ITEM.findall(value)]


def _list_condition(name: str, expression: str):
    operator, value = split_operator(expression)
    column = getattr(Image, name)
    if operator == "in":
        return column.in_(split_list(value))
    if operator == "eq":
        return column == value
    raise BadRequest(f"Unable to filter by unknown operator '{operator}'.")


TIME_OPERATORS = {"eq": "__eq__", "neq": "__ne__", "gt": "__gt__", "gte": "__ge__", "lt": "__lt__",
                  "lte": "__le__"}


def _time_condition(name: str, expression: str):
    operator, value = split_operator(expression)
    try:
        moment = parse_time(value)
    except ValueError:
        raise BadRequest(f'Bad "{name}" query filter format. Use ISO 8601 DateTime notation.') from None
    if operator not in TIME_OPERATORS:
        raise BadRequest("Unable to filter on a unknown operator.")
    return getattr(getattr(Image, name), TIME_OPERATORS[operator])(moment)


def _number_condition(name: str, text: str):
    """Equality with a number; a text that is no number, or no 64-bit integer, matches nothing."""
    if not _NUMBER.match(text):
        return NOTHING
    number = decimal.Decimal(text.strip())
    if number != number.to_integral_value() or abs(number) > MAX_INT64:
        return NOTHING
    return getattr(Image, name) == int(number)


def _range_condition(param: str, text: str):
    name, bound = param[:-4], param[-3:]
    try:
        number = int(text)
    except ValueError:
        raise BadRequest("Unable to filter on a range with a non-numeric value.") from None
    if name not in NUMBER_COLUMNS:
        # Glance: a range on anything but an integer column is a 500 there.
        raise BadRequest(f"Unable to filter on a range of '{name}': ranges apply to "
                         f"{', '.join(NUMBER_COLUMNS)}.")
    column = getattr(Image, name)
    if abs(number) > MAX_INT64:  # beyond any stored value: every image with a value, or none
        return column.is_null(False) if (number > 0) == (bound == "max") else NOTHING
    return column >= number if bound == "min" else column <= number


def _boolean(name: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise BadRequest(f"Invalid value '{value}' for '{name}' filter. Valid values are 'true' or 'false'.")
    return value == "true"


def _property_condition(name: str, value: str):
    return Image.id.in_(ImageProperty.select(ImageProperty.image)
                        .where((ImageProperty.name == name) & (ImageProperty.value == value)))


def _one_condition(name: str, value: str):
    if name in LIST_COLUMNS:
        return _list_condition(name, value)
    if name in TIME_COLUMNS:
        return _time_condition(name, value)
    if name.endswith(("_min", "_max")):
        return _range_condition(name, value)
    if name in NUMBER_COLUMNS:
        return _number_condition(name, value)
    if name in TEXT_COLUMNS:
        return getattr(Image, name) == value
    if name == "protected":
        return Image.protected == _boolean(name, value)
    if name == "deleted_at":  # Glance: a column of deleted images only
        return NOTHING
    return _property_condition(name, value)


def filter_condition(args) -> Expression:
    """The condition of every filter in ``args`` (a multi-dict of query parameters); 400 for bad ones."""
    values = {name: args.getlist(name)[-1] for name in args if name not in NOT_FILTERS}
    hidden = values.pop("os_hidden", "false").lower()
    condition = Image.os_hidden == _boolean("os_hidden", hidden)
    for name, value in values.items():
        condition &= _one_condition(name, value)
    for tag in args.getlist("tag"):
        condition &= Image.id.in_(ImageTag.select(ImageTag.image).where(ImageTag.value == tag.strip()))
    return condition
