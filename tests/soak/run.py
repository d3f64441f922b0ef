"""One soak: mixed traffic from several clients while the four faults happen, then the checks.

Timeline (fractions of the run): SIGKILL of host a and its restart 3 s later (20%),
SIGHUP of host b (40%), SeaweedFS stopped for 5 s (58%), PostgreSQL restarted (76%).
Each fault has a window, from its start to ``GRACE`` seconds after it is over; a request
that failed (5xx, or no answer) counts against a fault only if it overlaps its window.
"""
from __future__ import annotations

import dataclasses
import threading
import time

from tests.soak.cluster import LEASE, Cluster, Sampler, wait_answering
from tests.soak.ops import SoakClient
from tests.soak.probes import Probes
from tests.soak.traffic import Recorder

GRACE = 5.0
KILL_DOWN = 3.0
SEAWEEDFS_PAUSE = 5.0
FAULTS = ((0.20, "kill"), (0.40, "reload"), (0.58, "seaweedfs"), (0.76, "postgres"))


@dataclasses.dataclass
class Window:
    """A fault: what was done, from when until when (soak seconds), and what it reported."""

    name: str
    what: str
    start: float
    end: float
    details: dict = dataclasses.field(default_factory=dict)

    def overlaps(self, t0: float, t1: float) -> bool:
        return t0 <= self.end and t1 >= self.start


@dataclasses.dataclass
class Soak:
    """Everything a run produced, for the checks and the report."""

    duration: float
    recorder: Recorder
    sampler: Sampler
    probes: Probes
    windows: list[Window]
    recover_output: str = ""


def run_soak(cluster: Cluster, duration: float, clients: int = 6, seed: int = 28) -> Soak:
    """Run traffic for ``duration`` seconds with the faults; wait out the lease and recover."""
    recorder = Recorder()
    sampler = Sampler(cluster).start(recorder.epoch)
    probes = Probes(cluster, recorder, seed)
    workers = [threading.Thread(target=SoakClient(i, cluster.url, recorder, cluster.tokens_of(f"soak-{i}"), seed).run,
                                args=(duration,), name=f"soak-client-{i}") for i in range(clients)]
    for worker in workers:
        worker.start()
    windows = []
    probes.prepare_resume("a")
    for fraction, name in FAULTS:
        wait_for(recorder, fraction * duration - 1.0)
        windows.append(FAULT_ACTIONS[name](cluster, recorder, probes))
    for worker in workers:
        worker.join()
    probes.join()
    sampler.sample()
    sampler.stop()
    time.sleep(LEASE + 2)  # every lease a fault cut off has expired
    done = cluster.hosts["a"].run_cli("recover")
    return Soak(duration, recorder, sampler, probes, windows, done.stdout + done.stderr)


def wait_for(recorder: Recorder, at: float) -> None:
    delay = at - recorder.now()
    if delay > 0:
        time.sleep(delay)


def _kill(cluster: Cluster, recorder: Recorder, probes: Probes) -> Window:
    killed = []
    details = probes.resume_then_kill("a", KILL_DOWN, lambda: killed.append(recorder.now()))
    return Window("kill", f"SIGKILL of host a (master and workers), restarted after {KILL_DOWN:.0f} s", killed[0],
                  recorder.now() + GRACE, details)


def _reload(cluster: Cluster, recorder: Recorder, probes: Probes) -> Window:
    probes.stream_across("reload", cluster.hosts["b"].url)
    start = recorder.now()
    details = cluster.reload("b")
    return Window("reload", "SIGHUP of host b (graceful reload of its workers)", start,
                  recorder.now() + GRACE, details)


def _seaweedfs(cluster: Cluster, recorder: Recorder, probes: Probes) -> Window:
    probes.stream_across("seaweedfs", cluster.url)
    start = recorder.now()
    details = cluster.pause_seaweedfs(SEAWEEDFS_PAUSE)
    return Window("seaweedfs", f"SeaweedFS stopped (SIGSTOP) for {SEAWEEDFS_PAUSE:.0f} s", start,
                  recorder.now() + GRACE, details)


def _postgres(cluster: Cluster, recorder: Recorder, probes: Probes) -> Window:
    probes.stream_across("postgres", cluster.hosts["b"].url)
    start = recorder.now()
    details = cluster.restart_postgres()
    wait_answering(f"{cluster.url}/healthcheck")
    return Window("postgres", "PostgreSQL restarted (fast shutdown, same port)", start,
                  recorder.now() + GRACE, details)


FAULT_ACTIONS = {"kill": _kill, "reload": _reload, "seaweedfs": _seaweedfs, "postgres": _postgres}
