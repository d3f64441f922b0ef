"""Log formatting: text by default, one JSON object per line on request; never a secret."""
from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest

from imagedata import logs
from imagedata.app import create_app
from tests.conftest import make_env

IMAGE = "0b6c5b0e-1f8a-4f57-9d7e-6a3c2b1d0e9f"
ATTEMPT = "5f0c2d7e9a1b4c3d8e6f7a8b9c0d1e2f"


def _format(formatter, message, *args, **extra):
    record = logging.LogRecord("imagedata.test", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return formatter.format(record)


def test_json_lines_carry_level_logger_request_and_the_ids_named_by_the_arguments():
    token = logs.request_id.set("req-1234")
    try:
        line = _format(logs.JsonFormatter(), "upload %s of image %s failed", ATTEMPT, IMAGE, event="x")
    finally:
        logs.request_id.reset(token)
    record = json.loads(line)
    assert "\n" not in line
    assert record["level"] == "WARNING" and record["logger"] == "imagedata.test"
    assert record["message"] == f"upload {ATTEMPT} of image {IMAGE} failed"
    assert record["request_id"] == "req-1234"
    assert record["attempt"] == ATTEMPT and record["image_id"] == IMAGE
    assert record["event"] == "x" and record["time"].endswith("+00:00") and record["pid"] > 0


@pytest.mark.parametrize("formatter", [logs.TextFormatter(), logs.JsonFormatter()], ids=["text", "json"])
def test_tokens_and_registered_secrets_never_reach_a_line(formatter):
    logs.register_secrets("s3cr3t-\"quoted\"-value", "AKIDEXAMPLE123", None, "")
    token = "idt_" + "A1b2C3d4E5f6G7h8I9j0-_k1L2m3N4o5P6q7R8s9T0"
    line = _format(formatter, "bad %s key=%s secret=%s encoded=%s", token, "AKIDEXAMPLE123",
                   "s3cr3t-\"quoted\"-value", token.replace("_", "%5F", 1))
    assert "AKIDEXAMPLE123" not in line and "s3cr3t" not in line and "A1b2C3d4" not in line
    assert line.count(logs.REDACTED) == 4


def test_exceptions_are_redacted_too():
    try:
        raise ValueError("connect failed for postgresql://u:pw-0123456@db/x token idt_abcdefghijkl")
    except ValueError:
        import sys

        record = logging.LogRecord("imagedata", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    logs.register_secrets("pw-0123456")
    for formatter in (logs.TextFormatter(), logs.JsonFormatter()):
        line = formatter.format(record)
        assert "pw-0123456" not in line and "idt_abcdefghijkl" not in line and "ValueError" in line


def test_client_values_in_text_lines_are_bounded():
    assert logs.clean_text(IMAGE) == IMAGE
    assert logs.clean_text("a b") == "(invalid)"
    assert logs.clean_text("x\ny") == "(invalid)"
    assert logs.clean_text("x" * 100, 64) == "(invalid)"
    assert logs.clean_text(None) is None


def test_gunicorn_logconfig_makes_gunicorn_lines_json_and_drops_its_access_log():
    assert logs.gunicorn_logconfig("text") is None
    config = logs.gunicorn_logconfig("json", "info")
    logging.config.dictConfig(config)
    try:
        error = logging.getLogger("gunicorn.error")
        stream = io.StringIO()
        error.handlers[0].setStream(stream)
        error.info("Booting worker with pid: %s", 42)
        assert json.loads(stream.getvalue())["message"] == "Booting worker with pid: 42"
        assert not logging.getLogger("gunicorn.access").isEnabledFor(logging.INFO)
    finally:
        for name in ("gunicorn.error", "gunicorn.access"):
            logging.getLogger(name).handlers.clear()
        logging.getLogger().handlers.clear()


def _imagedata_formatter():
    handler = next(h for h in logging.getLogger("imagedata").handlers if getattr(h, "imagedata_handler", False))
    return handler.formatter


def test_text_is_the_default_and_json_is_chosen_by_setting(tmp_path):
    create_app(make_env(tmp_path / "a"))
    assert isinstance(_imagedata_formatter(), logs.TextFormatter)
    create_app(make_env(tmp_path / "b", IMAGEDATA_LOG_FORMAT="json"))
    assert isinstance(_imagedata_formatter(), logs.JsonFormatter)
    create_app(make_env(tmp_path / "c"))


def test_a_bad_log_format_is_refused(tmp_path):
    from imagedata.config import ConfigError

    with pytest.raises(ConfigError, match="IMAGEDATA_LOG_FORMAT"):
        create_app(make_env(tmp_path, IMAGEDATA_LOG_FORMAT="xml"))
