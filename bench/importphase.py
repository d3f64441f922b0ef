"""Interoperable import, end to end: web-download against curl, copy-image against SeaweedFS's PUT.

* **web-download**: a new image of ours imports the source file from the benchmark's nginx
  (``POST /v2/images/{id}/import``, method ``web-download``) into the default (file) store.
  The time runs from the POST until ``GET /v2/images/{id}`` says ``active``; the image must
  then carry the source's size, ``checksum`` (md5) and multihash, and its task must have
  succeeded. It is set beside ``curl -o /dev/null`` fetching the same URL from the same nginx.
* **copy-image** (needs the S3 store): an image that is active in the file store is copied
  to ``s3`` (method ``copy-image``, ``"stores": ["s3"]``, the admin token). The time runs from
  the POST until the image lists ``s3`` among its ``stores`` and the task has succeeded. The
  copy is then read back alone (the file store's copy removed first) and compared with the
  source, untimed. It is set beside SeaweedFS's own multipart PUT of the same file (boto3,
  ``s3peer.py``).

The service must be allowed to fetch from loopback: ``service_env`` gives the setting.
"""

import time

import phases
import rawhttp
from testkit.ports import LOOPBACK

POLL = 0.02  # seconds between the GETs that watch an import (at most this much added to a time)
FILE_STORE, S3_STORE = "local", "s3"
TASK_PROPERTY = "os_glance_import_task"  # set while an import holds the image


def service_env(nginx_port):
    """What lets the service web-download from the benchmark's nginx (as the tests allow their origin)."""
    return {"IMAGEDATA_WEB_DOWNLOAD_ALLOWED_HOSTS": f"{LOOPBACK}:{nginx_port}"}


def source_url(bench):
    """The URL of the source file on the benchmark's nginx."""
    host, port = bench.nginx.addr
    return f"http://{host}:{port}{bench.nginx.download_path()}"


def poll(fetch, finished, timeout, what):
    """Call ``fetch()`` every POLL seconds until ``finished(value)``; return that value."""
    deadline = time.perf_counter() + timeout
    while True:
        value = fetch()
        if finished(value):
            return value
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{what}: not done after {timeout:.0f} s (last seen: {value!r:.300})")
        time.sleep(POLL)


def image_record(ours, image_id):
    """GET /v2/images/{id} as a dict."""
    resp = ours.api("GET", f"/v2/images/{image_id}")
    if resp.status != 200:
        raise RuntimeError(f"GET image {image_id} -> {resp.status} {resp.body[:200]!r}")
    return resp.json()


def import_task(ours, image_id, request_id):
    """The image's import task started by ``request_id`` (None until it is listed)."""
    resp = ours.api("GET", f"/v2/images/{image_id}/tasks")
    if resp.status != 200:
        raise RuntimeError(f"GET tasks of {image_id} -> {resp.status} {resp.body[:200]!r}")
    found = [task for task in resp.json()["tasks"] if task.get("request_id") == request_id]
    return found[0] if found else None


def timed_import(bench, image_id, body, landed, until_task):
    """POST the import and watch it; return the seconds from the POST until ``landed(image)``
    (or, with ``until_task``, until its task succeeded too). Raises RuntimeError when the import
    is refused or ends otherwise."""
    ours, timeout, label = bench.ours, bench.timeout, f"{body['method']['name']} of {image_id}"
    started = time.perf_counter()
    resp = ours.api("POST", f"/v2/images/{image_id}/import", body)
    if resp.status != 202:
        raise RuntimeError(f"POST import ({label}) -> {resp.status} {resp.body[:300]!r}")
    request_id = resp.headers.get("x-openstack-request-id")
    image = poll(lambda: image_record(ours, image_id), lambda im: landed(im) or not im.get(TASK_PROPERTY),
                 timeout, label)
    seconds = time.perf_counter() - started
    task = poll(lambda: import_task(ours, image_id, request_id),
                lambda t: t is not None and t["status"] in ("success", "failure"), timeout, f"task of {label}")
    if task["status"] != "success" or not landed(image):
        raise RuntimeError(f"{label} ended with task {task['status']}: {task.get('message')!r}; image status "
                           f"{image.get('status')!r}, stores {image.get('stores')!r}")
    return time.perf_counter() - started if until_task else seconds


def import_once(bench, make_image, body, landed, until_task, verify):
    """Make an image (``make_image()``), time one import of it (``timed_import``), check it
    (``verify(image_id)``, a list of problems) and delete it; MiB/s, or None after a problem."""
    ours, method = bench.ours, body["method"]["name"]
    try:
        image_id = make_image()
    except (RuntimeError, rawhttp.HTTPFailure) as exc:
        bench.results.problem(f"import: {method}: could not prepare the image: {exc}")
        return None
    phases.settle(bench)
    try:
        with bench.rss_phase(f"import {method}", ours):
            seconds = timed_import(bench, image_id, body, landed, until_task)
        problems = verify(image_id)
    except (RuntimeError, rawhttp.HTTPFailure) as exc:
        problems, seconds = [f"import: {method} failed: {exc}"], None
    finally:
        ours.discard_upload(image_id)
    for text in problems:
        bench.results.problem(text)
    return None if problems else phases.rate(bench.source.size, seconds)


def web_download_once(bench):
    """A new image imports the source from nginx into the file store: timed until ``active``."""
    body = {"method": {"name": "web-download", "uri": source_url(bench)}}
    return import_once(bench, bench.ours.create_image, body, lambda image: image.get("status") == "active",
                       False, lambda image_id: bench.ours.verify_image(image_id, FILE_STORE))


def read_back_copy(bench, image_id):
    """Check the record, remove the file store's copy and download the image from the S3 copy
    alone (compared with the source); return a list of problems."""
    ours = bench.ours
    problems = ours.verify_image(image_id, f"{FILE_STORE},{S3_STORE}")
    if problems:
        return problems
    resp = ours.api("DELETE", f"/v2/stores/{FILE_STORE}/{image_id}")
    if resp.status != 204:
        return [f"import: DELETE the {FILE_STORE} copy of {image_id} -> {resp.status} {resp.body[:200]!r}"]
    resp = rawhttp.download(ours.addr, f"/v2/images/{image_id}/file", bench.sink, ours.headers(), bench.timeout)
    return phases.check_download(bench, ours, resp, 0, bench.source.size, 200)


def copy_image_once(bench):
    """An image active in the file store is copied to S3: timed until listed there and the task succeeded."""
    body = {"method": {"name": "copy-image"}, "stores": [S3_STORE]}
    return import_once(bench, bench.ours.upload_active, body,
                       lambda image: S3_STORE in image.get("stores", "").split(","), True,
                       lambda image_id: read_back_copy(bench, image_id))


def measure_import(bench, run):
    """web-download beside curl of the same URL; copy-image to S3 beside SeaweedFS's own PUT."""
    for name in phases.ordered(["ours", "curl"], run):
        if name == "ours":
            bench.results.add("import_web", "ours", run, web_download_once(bench))
        elif bench.opts.curl:
            bench.results.add("import_web", "nginx", run, phases.curl_download(bench, bench.nginx))
    if bench.s3_peer is None:
        bench.results.note("import: copy-image skipped: it needs the S3 store (--s3)")
        return
    for name in phases.ordered(["ours", "seaweedfs"], run):
        value = copy_image_once(bench) if name == "ours" else phases.peer_put_once(bench, bench.s3_peer)
        bench.results.add("import_copy_s3", name, run, value)
