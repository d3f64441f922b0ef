"""Requests the soak places across each fault, so that what a fault does to a client is seen
every run, not only when the random traffic happens to be there.

- SIGKILL: a Content-Range resume of a large kept upload, on the host killed 1.5 s into it
  (while the store copies the kept data: issue 28 item 2);
- SIGHUP, SeaweedFS pause, PostgreSQL restart: an upload streaming slowly across the fault,
  straight to a host (SIGHUP, PostgreSQL) or through nginx; a 503 must leave the image
  queued at once (issue 28 item 3), and the client retries it to 204.
"""
from __future__ import annotations

import threading
import time

from tests.soak.cluster import Cluster
from tests.soak.ops import SoakClient, cut_upload
from tests.soak.traffic import MIB, Recorder

KEPT = 256 * MIB  # the copy of this much kept data takes 3-8 s on SeaweedFS here
RESUME_TOTAL = 288 * MIB
KILL_INTO_RESUME = 1.5


class Probes:
    """The probe uploads of one soak; ``outcomes`` says what each saw."""

    def __init__(self, cluster: Cluster, recorder: Recorder, seed: int):
        self.cluster, self.recorder, self.seed = cluster, recorder, seed
        self.outcomes: dict[str, dict] = {}
        self.threads: list[threading.Thread] = []
        self.resume_image: str | None = None

    def client(self, base: str, number: int) -> SoakClient:
        return SoakClient(90 + number, base, self.recorder, self.cluster.tokens_of("soak-probes"), self.seed)

    def prepare_resume(self, host: str) -> threading.Thread:
        """In the background: an image with 256 MiB kept on S3 by a cut upload (to ``host``)."""
        self.prepared = threading.Thread(target=self._prepare_resume, args=(host,), name="probe-prepare")
        self.prepared.start()
        return self.prepared

    def _prepare_resume(self, host: str) -> None:
        client = self.client(self.cluster.hosts[host].url, 0)
        image_id = client.create("probe-create")
        seed = next(client.seeds)
        cut_upload(client.base, client.token, image_id, seed, RESUME_TOTAL, KEPT)
        offset = None
        deadline = time.monotonic() + 60
        while offset is None and time.monotonic() < deadline:
            record, headers, _ = client.http.call("probe-head", "HEAD", f"/v2/images/{image_id}/file", client.token)
            offset = int(headers["Upload-Offset"]) if "Upload-Offset" in headers else None
            time.sleep(0.3)
        self.resume_image = image_id
        self.outcomes["kill"] = {"image": image_id, "kept": offset, "seed": seed}

    def resume_then_kill(self, host: str, down: float, killing) -> dict:
        """Resume the kept upload on ``host``, SIGKILL the host 1.5 s into it, restart it.

        ``killing()`` is called right before the kill (it opens the fault window).
        """
        self.prepared.join(120)
        probe = self.outcomes.setdefault("kill", {})
        if probe.get("kept") is None:
            self.recorder.find("probe", f"the resume probe found no kept data: {probe}")
            return self.cluster.kill_and_restart(host, down, killing)
        client = self.client(self.cluster.hosts[host].url, 1)
        outcome = {}
        worker = threading.Thread(target=lambda: outcome.update(record=client.put(
            "probe-resume", probe["image"], probe["seed"], RESUME_TOTAL, start=probe["kept"], rate=16 * MIB)))
        worker.start()
        time.sleep(KILL_INTO_RESUME)
        details = self.cluster.kill_and_restart(host, down, killing)
        worker.join()
        probe["resume answer"] = outcome["record"].outcome
        return details

    def stream_across(self, name: str, base: str, lead: float = 1.0, size: int = 48 * MIB) -> None:
        """Start an upload of ``size`` at 16 MiB/s ``lead`` seconds before the fault; it retries to 204."""
        client = self.client(base, len(self.threads) + 2)
        image_id = client.create("probe-create")
        seed = next(client.seeds)
        probe = self.outcomes[name] = {"image": image_id}

        def run():
            first = client.put("probe-upload", image_id, seed, size, rate=16 * MIB)
            probe["first answer"] = first.outcome
            probe["first answer at"] = round(first.t1, 1)
            if first.outcome == 503:
                started = time.monotonic()
                while time.monotonic() - started < 30 and client.status(image_id, "probe-read") == "saving":
                    time.sleep(0.1)
                saving = probe["saving for s after 503"] = round(time.monotonic() - started, 1)
                if saving > 2.5:
                    self.recorder.find("saving after 503", f"probe image {image_id}: upload answered 503 at "
                                                           f"{first.t1:.1f}s, saving for {saving}s")
            if first.outcome != 204:
                ok = client.upload("probe-upload", image_id, seed, size)
                probe["retried to 204 at"] = round(self.recorder.now(), 1) if ok else None

        thread = threading.Thread(target=run, name=f"probe-{name}")
        thread.start()
        self.threads.append(thread)
        time.sleep(lead)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()
