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


def timed_import(bench, image_id, body, landed):
    """POST the import and watch it; return (seconds until ``landed(image)``, seconds until its
    task succeeded). Raises RuntimeError when the import is refused or ends otherwise."""
    ours, timeout, label = bench.ours, bench.timeout, f"{body['method']['name']} of {image_id}"
    started = time.perf_counter()
    resp = ours.api("POST", f"/v2/images/{image_id}/import", body)
    if resp.status != 202:
        raise RuntimeError(f"POST import ({label}) -> {resp.status} {resp.body[:300]!r}")
    request_id = resp.headers.get("x-openstack-request-id")
    image = poll(lambda: image_record(ours, image_id), lambda im: landed(im) or not im.get(TASK_PROPERTY),
                 timeout, label)
    landed_after = time.perf_counter() - started
    task = poll(lambda: import_task(ours, image_id, request_id),
                lambda t: t is not None and t["status"] in ("success", "failure"), timeout, f"task of {label}")
    ended_after = time.perf_counter() - started
    if task["status"] != "success" or not landed(image):
        raise RuntimeError(f"{label} ended with task {task['status']}: {task.get('message')!r}; image status "
                           f"{image.get('status')!r}, stores {image.get('stores')!r}")
    return landed_after, ended_after


def web_download_once(bench):
    """One verified web-download of the source into a new image; MiB/s or None after a problem."""
    ours = bench.ours
    try:
        image_id = ours.create_image()
    except (RuntimeError, rawhttp.HTTPFailure) as exc:
        bench.results.problem(f"import: could not create an image: {exc}")
        return None
    body = {"method": {"name": "web-download", "uri": source_url(bench)}}
    phases.settle(bench)
    try:
        with bench.rss_phase("import web-download", ours):
            seconds, _ = timed_import(bench, image_id, body, lambda image: image.get("status") == "active")
        problems = ours.verify_image(image_id, FILE_STORE)
    except (RuntimeError, rawhttp.HTTPFailure) as exc:
        problems, seconds = [f"import: web-download failed: {exc}"], None
    finally:
        ours.discard_upload(image_id)
    for text in problems:
        bench.results.problem(text)
    return None if problems else phases.rate(bench.source.size, seconds)


def read_back_copy(bench, image_id):
    """Remove the file store's copy and download the image from the S3 copy alone (verified)."""
    ours = bench.ours
    resp = ours.api("DELETE", f"/v2/stores/{FILE_STORE}/{image_id}")
    if resp.status != 204:
        return [f"import: DELETE the {FILE_STORE} copy of {image_id} -> {resp.status} {resp.body[:200]!r}"]
    resp = rawhttp.download(ours.addr, f"/v2/images/{image_id}/file", bench.sink, ours.headers(), bench.timeout)
    return phases.check_download(bench, ours, resp, 0, bench.source.size, 200)


def copy_image_once(bench):
    """One copy-image of an active file-store image to S3 (read back after); MiB/s or None."""
    ours = bench.ours
    try:
        image_id = ours.upload_active()
    except (RuntimeError, rawhttp.HTTPFailure) as exc:
        bench.results.problem(f"import: could not upload the image to copy: {exc}")
        return None
    body = {"method": {"name": "copy-image"}, "stores": [S3_STORE]}
    phases.settle(bench)
    try:
        with bench.rss_phase("import copy-image", ours):
            _, seconds = timed_import(bench, image_id, body,
                                      lambda image: S3_STORE in image.get("stores", "").split(","))
        problems = ours.verify_image(image_id, f"{FILE_STORE},{S3_STORE}") or read_back_copy(bench, image_id)
    except (RuntimeError, rawhttp.HTTPFailure) as exc:
        problems, seconds = [f"import: copy-image failed: {exc}"], None
    finally:
        ours.discard_upload(image_id)
    for text in problems:
        bench.results.problem(text)
    return None if problems else phases.rate(bench.source.size, seconds)


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
