"""Logging: short text lines (the default) or one JSON object per line; never a secret.

``IMAGEDATA_LOG_FORMAT=json`` makes every line of the service, including gunicorn's own
(see ``gunicorn_logconfig``), a JSON object. Fields a line carries besides ``message``:
the request id of the request it was logged for, and the image id and upload attempt id
when the record's arguments name them. Every formatted line, text or JSON, is passed
through ``redact``: API tokens and the secrets registered at start-up (store credentials,
database passwords) are replaced by ``***`` whatever code logged them.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

REDACTED = "***"
# API tokens as `imagedata token create` makes them (and as glanceclient percent-encodes them).
TOKEN_RE = re.compile(r"idt(?:_|%5[Ff])[A-Za-z0-9_%-]{8,}")
IMAGE_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ATTEMPT_RE = re.compile(r"^[0-9a-f]{32}$")
TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
# The request a log line belongs to (set by the request observer for the request's thread).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("imagedata_request_id", default=None)

_secrets: set[str] = set()
access_log = logging.getLogger("imagedata.access")


def register_secrets(*values: str | None) -> None:
    """Never let these strings appear in a log line (credentials, passwords)."""
    for value in values:
        if value and len(value) >= 4:
            _secrets.add(value)
            _secrets.add(json.dumps(value)[1:-1])  # as it appears inside a JSON string


def redact(text: str) -> str:
    """``text`` with every token and registered secret replaced by ``***``."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return TOKEN_RE.sub(REDACTED, text)


def _ids_in(record: logging.LogRecord) -> dict:
    """The image id and upload attempt id among a record's arguments, by their shapes."""
    found = {}
    args = record.args if isinstance(record.args, tuple) else ()
    for arg in args:
        if isinstance(arg, str):
            if "image_id" not in found and IMAGE_ID_RE.match(arg):
                found["image_id"] = arg
            elif "attempt" not in found and ATTEMPT_RE.match(arg):
                found["attempt"] = arg
    return found


class TextFormatter(logging.Formatter):
    """The classic one-line format, redacted."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None):
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        """Format as text, then redact."""
        return redact(super().format(record))


class JsonFormatter(_JsonFormatter):
    """One JSON object per record: time, level, logger, pid, message, request and ids; redacted."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("timestamp", "time")
        super().__init__("%(levelname)s %(name)s %(process)d %(message)s", *args,
                         rename_fields={"levelname": "level", "name": "logger", "process": "pid"}, **kwargs)

    def add_fields(self, log_data: dict, record: logging.LogRecord, message_dict: dict) -> None:
        """The standard fields, then the request id and the ids named by the arguments."""
        super().add_fields(log_data, record, message_dict)
        current = request_id.get()
        if current and "request_id" not in log_data:
            log_data["request_id"] = current
        for key, value in _ids_in(record).items():
            log_data.setdefault(key, value)

    def format(self, record: logging.LogRecord) -> str:
        """Serialise, then redact (exceptions included: they are part of the string)."""
        return redact(super().format(record))


def make_formatter(fmt: str) -> logging.Formatter:
    """The formatter for ``IMAGEDATA_LOG_FORMAT`` (``text`` or ``json``)."""
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send the service's logs (``imagedata.*``) to stderr in the chosen format, at ``level``."""
    logger = logging.getLogger("imagedata")
    logger.setLevel(level.upper())
    logger.propagate = False
    handler = next((h for h in logger.handlers if getattr(h, "imagedata_handler", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.imagedata_handler = True
        logger.addHandler(handler)
    handler.setFormatter(make_formatter(fmt))


def gunicorn_logconfig(fmt: str, level: str = "INFO") -> dict | None:
    """gunicorn's ``logconfig_dict`` for ``fmt``: JSON lines for its own messages too.

    gunicorn's access log is switched off (the service writes one access line per request
    itself); None for text, where gunicorn keeps its defaults.
    """
    if fmt != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": level.upper(), "handlers": ["error_console"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
        "handlers": {"console": handler, "error_console": handler},
        "formatters": {"json": {"()": "imagedata.logs.JsonFormatter"}},
    }


def clean_text(value, limit: int = 80) -> str | None:
    """A client-supplied value safe to put in a text log line (printable, no spaces, bounded)."""
    if value is None:
        return None
    text = str(value)
    if len(text) > limit or not text.isprintable() or " " in text:
        return "(invalid)"
    return text


def log_access(fields: dict) -> None:
    """Write the access line of one request (``fields`` as described in docs/operating.rst, "Logs")."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    message = (f"{fields['method']} {fields['route']} {fields['status']} in={fields['bytes_in']} "
               f"out={fields['bytes_out']} {fields['duration_ms']}ms req={fields['request_id']} "
               f"project={fields['project']} image={fields['image_id']}")
    access_log.info(message, extra={"event": "access", **fields})
