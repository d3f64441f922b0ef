"""The soak's verdict: what the clients saw against the fault windows, and the state left after
the lease and ``imagedata recover`` (images, bucket, quota, files, memory, connections).

Each problem is a line in ``problems``; any problem fails the soak.
"""
from __future__ import annotations

import collections
import os
import re

import requests

from tests.soak.cluster import BUCKET, PREFIX, Cluster
from tests.soak.run import Soak
from tests.soak.traffic import Checker

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RSS_GROWTH_KIB = 48 * 1024  # a worker's median RSS in the last third of its life over the middle third's
RSS_PEAK_KIB = 512 * 1024  # no worker ever holds this much: transfers stream in constant memory
FD_GROWTH = 16
THREADS, WORKERS = 16, 2  # gunicorn.conf.py's defaults, which the hosts run with


class Verdict:
    """Problems found, with the figures the report shows."""

    def __init__(self):
        self.problems: list[str] = []
        self.figures: dict = {}

    def add(self, problem: str) -> None:
        self.problems.append(problem)


def judge(cluster: Cluster, soak: Soak) -> Verdict:
    """Every check; the verdict holds what failed and the figures."""
    verdict = Verdict()
    check_requests(soak, verdict)
    check_findings(soak, verdict)
    images = list_images(cluster)
    check_images(cluster, soak, images, verdict)
    check_bucket(cluster, soak, images, verdict)
    check_quota(cluster, images, verdict)
    check_files(cluster, verdict)
    check_workers(soak, verdict)
    check_connections(soak, verdict)
    scrub = cluster.hosts["a"].run_cli("scrub")
    verdict.figures["scrub"] = scrub.stdout.strip().splitlines()[-1:] or [scrub.stderr[-300:]]
    for line in scrub.stdout.splitlines():
        if line.startswith(("orphan", "broken")):
            verdict.add(f"scrub: {line}")
    return verdict


def window_of(soak: Soak, record) -> str | None:
    return next((w.name for w in soak.windows if w.overlaps(record.t0, record.t1)), None)


def check_requests(soak: Soak, verdict: Verdict) -> None:
    """No 5xx and no lost answer outside a fault window."""
    for record in soak.recorder.records:
        if record.failed and window_of(soak, record) is None:
            verdict.add(f"{record.outcome} outside any fault window: {record.method} {record.op} "
                        f"{record.t0:.1f}-{record.t1:.1f}s {record.note}")


# Findings a fault may rightly cause when the request they are about met it: a cut upload
# answered 503 by a database that was restarting (the client had closed and never read it)
# keeps nothing to resume. Wrong bytes, statuses and metadata are never excused.
EXCUSED_IN_WINDOWS = frozenset({"no offset"})


def check_findings(soak: Soak, verdict: Verdict) -> None:
    """What the clients checked as they went: bytes, statuses, metadata; a 503 leaving `saving`."""
    excused = []
    for since, t, kind, detail in soak.recorder.findings:
        window = next((w.name for w in soak.windows if w.overlaps(since, t)), None)
        if kind in EXCUSED_IN_WINDOWS and window is not None:
            excused.append(f"{kind} ({window} window, {since:.1f}-{t:.1f}s): {detail}")
        else:
            verdict.add(f"{kind} at {t:.1f}s: {detail}")
    if excused:
        verdict.figures["findings in fault windows"] = excused


def list_images(cluster: Cluster) -> list[dict]:
    """Every image (the admin's listing, page by page)."""
    token, url, found = cluster.tokens["admin"], f"{cluster.url}/v2/images?limit=200", []
    while url:
        answer = requests.get(url, headers={"X-Auth-Token": token}, timeout=60)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found += page["images"]
        url = f"{cluster.url}{page['next']}" if page.get("next") else None
    return found


def kept_of(cluster: Cluster, image: dict) -> tuple[int, int] | None:
    """(Upload-Offset, Upload-Length) that HEAD advertises for a queued image's kept data."""
    answer = requests.head(f"{cluster.url}/v2/images/{image['id']}/file", timeout=30,
                           headers={"X-Auth-Token": cluster.tokens["admin"]})
    if "Upload-Offset" not in answer.headers:
        return None
    return int(answer.headers["Upload-Offset"]), int(answer.headers["Upload-Length"])


def check_images(cluster: Cluster, soak: Soak, images: list[dict], verdict: Verdict) -> None:
    """No image stuck; each active image of the clients is what was uploaded, byte for byte."""
    statuses = collections.Counter(image["status"] for image in images)
    verdict.figures["images"] = dict(statuses)
    for image in images:
        if image["status"] not in ("active", "queued"):
            verdict.add(f"image {image['id']} left {image['status']}")
    for image_id, (seed, size) in list(soak.recorder.active.items()):
        check = Checker(seed)
        with requests.get(f"{cluster.url}/v2/images/{image_id}/file", stream=True, timeout=120,
                          headers={"X-Auth-Token": cluster.tokens["admin"]}) as answer:
            for piece in answer.iter_content(1 << 20):
                check.feed(piece)
        if answer.status_code != 200 or check.wrong or check.pos != size:
            verdict.add(f"image {image_id}: final download {answer.status_code}, {check.pos} of {size} bytes, "
                        f"{check.wrong} wrong")


def check_bucket(cluster: Cluster, soak: Soak, images: list[dict], verdict: Verdict) -> None:
    """Every object belongs to an active image (its size) or to kept data HEAD advertises; no
    multipart upload is left."""
    s3, by_id = cluster.s3(), {image["id"]: image for image in images}
    objects = collections.defaultdict(list)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/"):
        for obj in page.get("Contents", []):
            found = UUID_RE.search(obj["Key"])
            objects[found.group(0) if found else None].append(obj)
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Uploads", [])
    verdict.figures["bucket"] = {"objects": sum(map(len, objects.values())), "multipart uploads": len(uploads)}
    for upload in uploads:
        verdict.add(f"multipart upload left: {upload['Key']} (started {upload['Initiated']})")
    for image_id, found in objects.items():
        image = by_id.get(image_id)
        if image is None:
            verdict.add(f"objects of no image: {[o['Key'] for o in found]}")
            continue
        wanted = image["size"] if image["status"] == "active" else (kept_of(cluster, image) or (None,))[0]
        if len(found) != 1 or found[0]["Size"] != wanted:
            verdict.add(f"image {image_id} ({image['status']}, accounts for {wanted} bytes) has objects "
                        f"{[(o['Key'], o['Size']) for o in found]}")
    for image in images:
        if image["status"] == "active" and image["id"] not in objects:
            verdict.add(f"active image {image['id']} has no object")


def check_quota(cluster: Cluster, images: list[dict], verdict: Verdict) -> None:
    """The project's usage is what its images hold: active sizes and the totals of kept uploads."""
    for project, token in cluster.tokens.items():
        if project == "admin":
            continue
        mine = [image for image in images if image["owner"] == project]
        held = sum(image["size"] or 0 for image in mine if image["status"] == "active")
        held += sum((kept_of(cluster, image) or (0, 0))[1] for image in mine if image["status"] == "queued")
        answer = requests.get(f"{cluster.url}/v2/info/usage", headers={"X-Auth-Token": token}, timeout=30)
        used = answer.json()["usage"]["image_size_total"]["usage"]
        verdict.figures[f"quota {project}"] = {"usage": used, "images hold": held}
        if used != held:
            verdict.add(f"project {project}: quota usage {used} bytes, its images hold {held}")


def check_files(cluster: Cluster, verdict: Verdict) -> None:
    """No file left behind: nginx's temporary folders are empty, the hosts' data folders hold only
    their metrics and control socket."""
    for folder in ("body", "proxy"):
        path = os.path.join(cluster.nginx.prefix, folder)
        left = [os.path.join(root, f) for root, _, files in os.walk(path) for f in files]
        if left:
            verdict.add(f"nginx left temporary files: {left[:5]}")
    for name, host in cluster.hosts.items():
        data = os.path.join(host.root, "data")
        for root, _, files in os.walk(data):
            for f in files:
                if not (root.startswith(os.path.join(data, "metrics")) or f == "gunicorn.ctl"):
                    verdict.add(f"host {name} left {os.path.join(root, f)}")


def check_workers(soak: Soak, verdict: Verdict) -> None:
    """Each worker that lived through a third of the run: RSS and open files flat, and no RSS
    peak past RSS_PEAK_KIB.

    Flat is judged on medians, the last third of a worker's life against its middle third: a
    leak lifts the whole baseline, while the peaks of a few concurrent transfers (an S3 upload
    holds two part buffers) come and go. The first third is warm-up (imports done on first use,
    the S3 client's pools): a worker started by the reload went 83 -> 181 MiB there in one run,
    to the level of the workers that lived the whole run; another peaked at 260 MiB late in a
    two-minute run and ended at 121 MiB.
    """
    lives = collections.defaultdict(list)
    for t, host, pid, rss, fds in soak.sampler.workers:
        lives[(host, pid)].append((t, rss, fds))
    trends = {}
    for (host, pid), samples in sorted(lives.items()):
        peak = max(s[1] for s in samples)
        if peak > RSS_PEAK_KIB:
            verdict.add(f"worker {host}/{pid} peaked at {peak // 1024} MiB")
        if samples[-1][0] - samples[0][0] < soak.duration / 3 or len(samples) < 6:
            continue
        third = len(samples) // 3
        middle, late = samples[third:2 * third], samples[2 * third:]
        rss_growth = _median(s[1] for s in late) - _median(s[1] for s in middle)
        fd_growth = _median(s[2] for s in late) - _median(s[2] for s in middle)
        trends[f"{host}/{pid}"] = {"rss MiB": f"{samples[0][1] // 1024}->{samples[-1][1] // 1024} "
                                              f"(max {peak // 1024}, median of the last third "
                                              f"{_median(s[1] for s in late) // 1024})",
                                   "fds": f"{samples[0][2]}->{samples[-1][2]} (max {max(s[2] for s in samples)})"}
        if rss_growth > RSS_GROWTH_KIB or fd_growth > FD_GROWTH:
            verdict.add(f"worker {host}/{pid} grew: median RSS +{rss_growth // 1024} MiB, open files +{fd_growth}")
    verdict.figures["workers"] = trends
    if not trends:
        verdict.add("no worker lived long enough to judge its memory")


def _median(values) -> int:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def check_connections(soak: Soak, verdict: Verdict) -> None:
    """PostgreSQL connections stay within what the hosts' threads can hold (a reload doubles a host
    for a moment)."""
    counts = [n for _, n in soak.sampler.connections]
    bound = 2 * WORKERS * (THREADS + 2) * 3 // 2
    verdict.figures["postgres connections"] = {"max": max(counts, default=None), "last": counts[-1:],
                                               "bound": bound}
    if not counts or max(counts) > bound:
        verdict.add(f"PostgreSQL connections {max(counts, default=None)} over the bound {bound}")
