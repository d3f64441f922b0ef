"""gunicorn.conf.py's own settings: the GIL switch interval each worker runs with."""
from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

import pytest

CONF = str(Path(__file__).parents[2] / "gunicorn.conf.py")


def load(monkeypatch, value=None):
    if value is None:
        monkeypatch.delenv("IMAGEDATA_SWITCH_INTERVAL", raising=False)
    else:
        monkeypatch.setenv("IMAGEDATA_SWITCH_INTERVAL", value)
    return runpy.run_path(CONF)


def test_workers_hand_the_gil_over_every_millisecond_by_default(monkeypatch):
    assert load(monkeypatch)["_SWITCH_INTERVAL"] == 0.001
    assert load(monkeypatch, "0.005")["_SWITCH_INTERVAL"] == 0.005


@pytest.mark.parametrize("value", ["fast", "0", "-1", "nan", "5"])
def test_a_bad_switch_interval_stops_the_start_with_its_name(monkeypatch, value):
    with pytest.raises(SystemExit, match="IMAGEDATA_SWITCH_INTERVAL must be"):
        load(monkeypatch, value)


def test_post_fork_sets_the_interval_in_the_worker(monkeypatch):
    conf = load(monkeypatch, "0.002")
    monkeypatch.setattr("imagedata.server.noauth_guard.check_worker", lambda worker, mode: None)
    monkeypatch.setitem(conf["post_fork"].__globals__, "_tune_malloc", lambda: None)
    before = sys.getswitchinterval()
    try:
        conf["post_fork"](types.SimpleNamespace(), types.SimpleNamespace())
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)
