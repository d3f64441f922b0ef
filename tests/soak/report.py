"""The soak's report: requests and statuses (overall, per operation, per fault window), bytes,
what each fault looked like to its probe, memory and connections, the state left, the verdict."""
from __future__ import annotations

import collections
import json

from tests.soak.checks import Verdict, window_of
from tests.soak.run import Soak

GIB = 1 << 30


def counts(records) -> dict:
    """{outcome: n}, statuses first."""
    found = collections.Counter(str(r.outcome) for r in records)
    return dict(sorted(found.items()))


def render(soak: Soak, verdict: Verdict) -> str:
    """The whole report as text."""
    records = soak.recorder.records
    sent = sum(r.sent for r in records)
    received = sum(r.received for r in records)
    lines = [f"soak: {soak.duration:.0f} s of traffic, {len(records)} requests, "
             f"{sent / GIB:.2f} GiB in (sent by clients), {received / GIB:.2f} GiB out (received), "
             f"{sum(r.wrong for r in records)} wrong bytes",
             f"statuses: {json.dumps(counts(records))}", "per operation:"]
    by_op = collections.defaultdict(list)
    for record in records:
        by_op[record.op].append(record)
    for op, mine in sorted(by_op.items()):
        lines.append(f"  {op:22s} {len(mine):6d}  {json.dumps(counts(mine))}")
    lines.append("fault windows (requests overlapping each; failed ones by operation):")
    for window in soak.windows:
        inside = [r for r in records if window.overlaps(r.t0, r.t1)]
        failed = collections.Counter(f"{r.op} {r.outcome}" for r in inside if r.failed)
        lines.append(f"  {window.name}: {window.what}, {window.start:.1f}-{window.end:.1f}s "
                     f"{json.dumps(window.details)}")
        lines.append(f"    {len(inside)} requests, {sum(failed.values())} failed: {json.dumps(dict(failed))}")
        lines.append(f"    statuses: {json.dumps(counts(inside))}")
        probe = soak.probes.outcomes.get(window.name)
        if probe:
            lines.append(f"    probe: {json.dumps({k: v for k, v in probe.items() if k != 'seed'})}")
    outside = [r for r in records if window_of(soak, r) is None]
    lines.append(f"outside the windows: {len(outside)} requests, statuses {json.dumps(counts(outside))}")
    lines.append(f"recover: {soak.recover_output.strip()[:300]}")
    for name, value in verdict.figures.items():
        lines.append(f"{name}: {json.dumps(value)}")
    lines.append(f"worker samples: {len(soak.sampler.workers)}; connection samples: {len(soak.sampler.connections)}")
    lines.append(f"PROBLEMS: {len(verdict.problems)}" if verdict.problems else "no problem")
    lines += [f"  - {p}" for p in verdict.problems[:80]]
    return "\n".join(lines)
