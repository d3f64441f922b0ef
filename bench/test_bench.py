"""Fast checks of the benchmark's own logic: ``python3 -m pytest bench/test_bench.py``.

The raw client is exercised against a tiny threaded ``http.server`` on
127.0.0.1 (ranges, Content-Length and chunked uploads), so no service,
nginx or wrk is needed.
"""

import hashlib
import http.server
import os
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadtest  # noqa: E402
import options  # noqa: E402
import phases  # noqa: E402
import rawhttp  # noqa: E402
import report  # noqa: E402

DATA = os.urandom(3 * rawhttp.CHUNK + 12345)

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:1234/v2/images/x
  2 threads and 16 connections
  Latency Distribution
     50%    5.10ms
     75%    7.00ms
     90%    9.00ms
     99%   23.45ms
  12000 requests in 10.00s, 9.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 2
Requests/sec:   1200.50
Transfer/sec:    900.00KB
"""


class Handler(http.server.BaseHTTPRequestHandler):
    """GET /data (with single ranges) and PUT /sink (Content-Length or chunked)."""

    protocol_version = "HTTP/1.1"
    received = {}

    def log_message(self, *args):
        """Quiet."""

    def do_GET(self):
        """Serve DATA, honouring ``Range: bytes=a-b``."""
        start, end = 0, len(DATA) - 1
        status = 200
        if "Range" in self.headers:
            first, last = self.headers["Range"].split("=")[1].split("-")
            start, end, status = int(first), int(last), 206
        self.send_response(status)
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(DATA)}")
        self.end_headers()
        self.wfile.write(DATA[start:end + 1])

    def do_PUT(self):
        """Store the body and answer 204."""
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                body += self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    break
        else:
            body = self.rfile.read(int(self.headers["Content-Length"]))
        Handler.received[self.path] = body
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def server():
    """A threaded HTTP server on a free loopback port."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("text, expected", [("32M", 32 << 20), ("1G", 1 << 30), ("1GiB", 1 << 30),
                                            ("512k", 512 << 10), ("1048576", 1 << 20)])
def test_parse_size(text, expected):
    assert options.parse_size(text) == expected


@pytest.mark.parametrize("nbytes, label", [(1 << 30, "1GiB"), (32 << 20, "32MiB"), (1536 << 10, "1536KiB")])
def test_size_label(nbytes, label):
    assert options.size_label(nbytes) == label


def test_parse_phases():
    assert options.parse_phases("s3, uploads") == ["s3", "uploads"]
    for bad in ("", "s3,nope"):
        with pytest.raises(Exception, match="phase"):
            options.parse_phases(bad)
    import run  # every phase name runs a step
    assert tuple(run.PHASES) == options.PHASE_NAMES


def test_parse_wrk():
    parsed = loadtest.parse_wrk(WRK_OUTPUT)
    assert parsed == {"rps": 1200.5, "p99_ms": 23.45, "non2xx": 2, "connect_errors": 0,
                      "other_socket_errors": 4}


def test_range_specs_scale_down():
    assert phases.range_specs(1 << 30) == {"range_tail": ((1 << 30) - (1 << 20), 1 << 20),
                                           "range_middle": (384 << 20, 256 << 20)}
    small = phases.range_specs(32 << 20)
    assert small["range_tail"][1] == 1 << 20
    assert small["range_middle"][1] == 8 << 20


def test_ratios_are_per_run():
    figures = {"download_full": {"ours": [100.0, 300.0, None], "nginx": [200.0, 300.0, 100.0]}}
    ratios = report.compute_ratios(figures)["download_full"]["ours/nginx"]
    assert ratios["runs"] == [0.5, 1.0, None]
    assert ratios["median"] == 0.75 and ratios["met"] is False


def test_parallel_uploads_have_goals():
    figures = {"upload_parallel": {"ours": [450.0, 300.0]}, "hash_md5_sha512": {"ours": [500.0, 500.0]},
               "upload_parallel_fairness": {"ours": [0.9, 0.4]}}
    ratio = report.compute_ratios(figures)["upload_parallel"]["ours/hash"]
    assert ratio["runs"] == [0.9, 0.6] and ratio["goal"] == ">= 0.8"
    fairness = report.compute_absolute_goals(figures, {})["upload_parallel_fairness"]
    assert fairness["goal"] == ">= 0.5" and fairness["met"] is True  # the median 0.65


def test_a_ratio_without_a_column_shows_its_value_in_the_goal():
    figures = {"get_image_idle_rps": {"ours": [1000.0]}, "get_image_loaded_rps": {"ours": [700.0]}}
    doc = report.build_document({}, figures, {}, [], [], [])
    text = report.render_table(doc, {"tail": "1MiB", "middle": "8MiB", "uploads": 4, "big": "0B"})
    assert "loaded/idle 0.70 >= 0.8: MISSED" in text


def test_table_renders():
    figures = {"upload_cl": {"ours": [300.0], "nginx": [1200.0]}, "hash_md5_sha512": {"ours": [400.0]}}
    rss = {"phases": {"upload cl@32MiB": {"max_growth_mb": 3.0, "max_rise_mb": 2.0},
                      "concurrent 64@32MiB": {"max_growth_mb": 40.0, "max_rise_mb": 20.0}}}
    doc = report.build_document({}, figures, rss, [], [], [])
    text = report.render_table(doc, {"tail": "1MiB", "middle": "8MiB", "uploads": 4, "big": "0B"})
    assert "0.75" in text and "0.25" in text and "+3.0" in text and "+2.0" in text
    assert doc["rss_growth_mb"] == {"rss concurrent growth 32MiB": 40.0, "rss single growth 32MiB": 3.0,
                                    "rss single rise 32MiB": 2.0}
    assert doc["goals"]["rss single rise 32MiB"]["met"] and "rss concurrent growth 32MiB" not in doc["goals"]


def test_import_rows_show_their_references_and_ratios_without_a_goal():
    figures = {"import_web": {"ours": [500.0], "nginx": [2000.0]},
               "import_copy_s3": {"ours": [90.0], "seaweedfs": [120.0]}}
    rss = {"phases": {"import copy-image@32MiB": {"max_growth_mb": 23.0, "max_rise_mb": 22.0}}}
    doc = report.build_document({}, figures, rss, [], [], [])
    assert doc["ratios"]["import_web"]["ours/nginx"]["median"] == 0.25
    assert doc["ratios"]["import_copy_s3"]["ours/S3"]["median"] == 0.75
    assert "goal" not in doc["ratios"]["import_web"]["ours/nginx"]
    assert doc["goals"]["rss single rise 32MiB"]["met"]  # an import moves one image: the RSS goal holds
    text = report.render_table(doc, {"tail": "1MiB", "middle": "8MiB", "uploads": 4, "big": "0B"})
    web = next(line for line in text.splitlines() if line.startswith("import web-download"))
    assert "2000" in web and "0.25" in web and "MISSED" not in web and "met" not in web


def test_download_buffer_and_range(server):
    sink = rawhttp.BufferSink(len(DATA))
    resp = rawhttp.download(server, "/data", sink)
    assert resp.status == 200 and resp.nbytes == len(DATA)
    assert sink.sha512() == hashlib.sha512(DATA).hexdigest()
    resp = rawhttp.download(server, "/data", sink, {"Range": "bytes=100-1048675"})
    assert resp.status == 206 and resp.headers["content-range"] == f"bytes 100-1048675/{len(DATA)}"
    assert sink.sha512() == hashlib.sha512(DATA[100:1048676]).hexdigest()
    sink.close()


def test_compare_sink_detects_a_wrong_byte(server):
    reference = rawhttp.aligned_buffer(len(DATA))
    reference[:] = DATA
    address = rawhttp.buffer_address(reference)
    good = rawhttp.CompareSink(address)
    rawhttp.download(server, "/data", good)
    assert good.mismatch_at is None
    reference[2 * rawhttp.CHUNK + 7] ^= 0xFF
    bad = rawhttp.CompareSink(address)
    rawhttp.download(server, "/data", bad)
    assert bad.mismatch_at is not None and bad.mismatch_at <= 2 * rawhttp.CHUNK + 7
    good.close()
    bad.close()


@pytest.mark.parametrize("chunked", [False, True])
def test_upload_framings(server, tmp_path, chunked):
    path = tmp_path / "f.bin"
    path.write_bytes(DATA)
    with open(path, "rb") as fobj:
        resp = rawhttp.upload(server, f"/sink-{chunked}", fobj, len(DATA), chunked=chunked)
    assert resp.status == 204
    assert Handler.received[f"/sink-{chunked}"] == DATA
