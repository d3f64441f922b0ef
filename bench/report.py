"""Turn the recorded figures into one table (stdout) and a JSON document.

Ratios are computed per run (ours and the reference measured in the same
run, back to back) and then summarised, as perf-limits.md recommends.  Goals
are reported as met/missed; a missed goal never fails the benchmark.
"""

import json
import statistics

TARGETS = ("ours", "nginx", "glance", "seaweedfs")

# metric key -> (label, unit)
METRICS = {
    "hash_md5_sha512": ("hash-only md5 || sha512, 2 threads (in-process)", "MiB/s"),
    "upload_cl": ("upload, Content-Length", "MiB/s"),
    "upload_cl_curl": ("upload, Content-Length (curl)", "MiB/s"),
    "upload_chunked": ("upload, chunked", "MiB/s"),
    "upload_chunked_curl": ("upload, chunked (curl)", "MiB/s"),
    "upload_parallel": ("{uploads} simultaneous uploads, Content-Length, aggregate", "MiB/s"),
    "upload_parallel_fairness": ("  slowest of them over the fastest (rate)", "ratio"),
    "download_full": ("download, whole image", "MiB/s"),
    "download_full_curl": ("download, whole image (curl)", "MiB/s"),
    "range_tail": ("range, last {tail}", "MiB/s"),
    "range_tail_ms": ("range, last {tail}: time", "ms"),
    "range_middle": ("range, middle {middle}", "MiB/s"),
    "concurrent_16": ("16 concurrent downloads, aggregate", "MiB/s"),
    "concurrent_16_errors": ("16 concurrent downloads: failed", "count"),
    "concurrent_64": ("64 concurrent downloads, aggregate", "MiB/s"),
    "concurrent_64_errors": ("64 concurrent downloads: failed", "count"),
    "get_image_idle_rps": ("GET image, idle (wrk -t2 -c16)", "req/s"),
    "get_image_idle_p99_ms": ("GET image, idle: p99", "ms"),
    "get_image_loaded_rps": ("GET image while {uploads} uploads stream", "req/s"),
    "get_image_loaded_p99_ms": ("GET image while {uploads} uploads stream: p99", "ms"),
    "load_upload_aggregate": ("  those {uploads} uploads, aggregate", "MiB/s"),
    "big_upload_cl": ("upload, Content-Length, {big}", "MiB/s"),
    "big_download": ("download, whole image, {big}", "MiB/s"),
    "s3_upload_cl": ("S3 store: upload, Content-Length", "MiB/s"),
    "s3_download_full": ("S3 store: download, whole image", "MiB/s"),
    "s3big_upload_cl": ("S3 store: upload, Content-Length, {big}", "MiB/s"),
    "s3big_download": ("S3 store: download, whole image, {big}", "MiB/s"),
    "cache_first": ("S3 store + cache: first download (fills the cache)", "MiB/s"),
    "cache_hit": ("S3 store + cache: second download (from the cache)", "MiB/s"),
    "import_web": ("import web-download from nginx, POST to active (nginx: curl)", "MiB/s"),
    "import_copy_s3": ("import copy-image file store -> S3, POST to success", "MiB/s"),
}

# (name, metric, numerator target, denominator (metric, target), goal op, goal value)
RATIOS = [
    ("ours/nginx", "download_full", "ours", ("download_full", "nginx"), ">=", 0.95),
    ("ours/nginx", "download_full_curl", "ours", ("download_full_curl", "nginx"), None, None),
    ("ours/nginx", "range_tail", "ours", ("range_tail", "nginx"), ">=", 0.95),
    ("ours/nginx", "range_middle", "ours", ("range_middle", "nginx"), ">=", 0.95),
    ("ours/nginx", "concurrent_16", "ours", ("concurrent_16", "nginx"), None, None),
    ("ours/nginx", "concurrent_64", "ours", ("concurrent_64", "nginx"), ">=", 0.8),
    ("ours/nginx", "upload_cl", "ours", ("upload_cl", "nginx"), None, None),
    ("ours/nginx", "upload_chunked", "ours", ("upload_chunked", "nginx"), None, None),
    ("ours/hash", "upload_cl", "ours", ("hash_md5_sha512", "ours"), ">=", 0.8),
    ("ours/hash", "upload_chunked", "ours", ("hash_md5_sha512", "ours"), ">=", 0.8),
    ("ours/hash", "upload_parallel", "ours", ("hash_md5_sha512", "ours"), ">=", 0.8),
    ("ours/hash", "upload_cl_curl", "ours", ("hash_md5_sha512", "ours"), None, None),
    ("ours/hash", "upload_chunked_curl", "ours", ("hash_md5_sha512", "ours"), None, None),
    ("ours/glance", "upload_cl", "ours", ("upload_cl", "glance"), ">=", 2.5),
    ("ours/glance", "upload_chunked", "ours", ("upload_chunked", "glance"), ">=", 2.5),
    ("ours/glance", "download_full", "ours", ("download_full", "glance"), None, None),
    # The "within 20% of its idle rate": GET image while uploads stream over idle.
    ("loaded/idle", "get_image_loaded_rps", "ours", ("get_image_idle_rps", "ours"), ">=", 0.8),
    ("ours/S3", "s3_upload_cl", "ours", ("s3_upload_cl", "seaweedfs"), ">=", 0.8),
    ("ours/S3", "s3_download_full", "ours", ("s3_download_full", "seaweedfs"), ">=", 0.8),
    ("ours/S3", "cache_first", "ours", ("cache_first", "seaweedfs"), None, None),
    ("ours/nginx", "cache_hit", "ours", ("cache_hit", "nginx"), ">=", 0.95),
    # Issue 27 asks for these side by side, without a goal: curl -o /dev/null of the same URL, and
    # SeaweedFS's own PUT of the same file.
    ("ours/nginx", "import_web", "ours", ("import_web", "nginx"), None, None),
    ("ours/S3", "import_copy_s3", "ours", ("import_copy_s3", "seaweedfs"), None, None),
    # web-download computes both digests as an upload does: the hash limit bounds it too.
    ("ours/hash", "import_web", "ours", ("hash_md5_sha512", "ours"), None, None),
    ("S3/file", "s3_upload_cl", "ours", ("upload_cl", "ours"), None, None),
    ("S3/file", "s3_download_full", "ours", ("download_full", "ours"), None, None),
]

# absolute goals on ours: metric -> (op, value)
ABSOLUTE_GOALS = {
    "concurrent_64_errors": ("<=", 0),
    "concurrent_16_errors": ("<=", 0),
    "get_image_loaded_p99_ms": ("<", 100.0),
    "get_image_loaded_rps": (">=", 1000.0),
    # No upload starved by the others: the slowest gets at least half the fastest's rate.
    "upload_parallel_fairness": (">=", 0.5),
}
RSS_GOAL_MB = 30.0
RSS_LABELS = {
    ("single", "rise"): "worker RSS rise during one {size} transfer",
    ("single", "growth"): "worker RSS over idle, one-at-a-time {size} transfers",
    ("concurrent", "growth"): "worker RSS over idle, concurrent phases ({size})",
}
RATIO_COLUMNS = ("ours/nginx", "ours/hash", "ours/glance", "ours/S3", "S3/file")


def summarize(values):
    """Median, min, max and n of the non-missing values (None when there are none)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"median": statistics.median(present), "min": min(present), "max": max(present),
            "n": len(present), "runs": values}


def per_run_ratios(figures, metric, num_target, den_metric, den_target):
    """Ratios of the same runs; None where either side is missing."""
    nums = figures.get(metric, {}).get(num_target, [])
    dens = figures.get(den_metric, {}).get(den_target, [])
    return [n / d if n is not None and d else None for n, d in zip(nums, dens)]


def goal_met(value, op, bound):
    """Compare ``value`` with a goal."""
    return {">=": value >= bound, "<": value < bound, "<=": value <= bound}[op]


def compute_ratios(figures):
    """Return {metric: {ratio name: summary + goal}}."""
    out = {}
    for name, metric, num, (den_metric, den_target), op, bound in RATIOS:
        summary = summarize(per_run_ratios(figures, metric, num, den_metric, den_target))
        if summary is None:
            continue
        if op is not None:
            summary.update(goal=f"{op} {bound}", met=goal_met(summary["median"], op, bound))
        out.setdefault(metric, {})[name] = summary
    return out


def compute_absolute_goals(figures, rss):
    """Return {metric: {"goal":..., "met":...}} for the absolute goals on ours."""
    out = {}
    for metric, (op, bound) in ABSOLUTE_GOALS.items():
        summary = summarize(figures.get(metric, {}).get("ours", []))
        if summary is not None:
            out[metric] = {"goal": f"{op} {bound:g}", "met": goal_met(summary["median"], op, bound)}
    for name, value in rss_growths(rss).items():
        if " single " in name:
            out[name] = {"goal": f"< {RSS_GOAL_MB:g} MB", "met": value < RSS_GOAL_MB}
    return out


SINGLE_PHASES = ("upload", "download", "range", "import")


def rss_growths(rss):
    """Worker RSS figures in MB, keyed "rss <kind> <size>".

    ``single`` phases move one image at a time; for them the goal applies to
    the rise during a transfer and to the growth over the idle baseline.
    ``concurrent`` phases (16/64 downloads, uploads under wrk) hold one
    thread per connection and are shown for information.
    """
    if not rss:
        return {}
    out = {}
    for phase, info in rss.get("phases", {}).items():
        kind, _, size = phase.partition("@")
        group = "single" if kind.startswith(SINGLE_PHASES) else "concurrent"
        for figure, value in (("growth", info.get("max_growth_mb")), ("rise", info.get("max_rise_mb"))):
            if value is None or (group == "concurrent" and figure == "rise"):
                continue
            key = f"rss {group} {figure} {size}"
            out[key] = max(out.get(key, value), value)
    return dict(sorted(out.items()))


def build_document(config, figures, rss, problems, notes, idle):
    """Assemble the JSON document."""
    contended = sum(1 for f in idle if f < 0.85)
    return {
        "config": config,
        "figures": {metric: {t: summarize(runs) for t, runs in per_target.items()}
                    for metric, per_target in figures.items()},
        "ratios": compute_ratios(figures),
        "goals": compute_absolute_goals(figures, rss),
        "rss": rss,
        "rss_growth_mb": rss_growths(rss),
        "problems": problems,
        "notes": notes,
        "idle_checks": {"count": len(idle), "contended_starts": contended},
        "ok": not problems,
    }


def fmt_number(value, unit):
    """Format a figure for the table."""
    if value is None:
        return "-"
    if unit in ("count",):
        return f"{value:.0f}"
    if unit == "ms":
        return f"{value:.1f}" if value < 100 else f"{value:.0f}"
    return f"{value:.0f}" if value >= 10 else f"{value:.2f}"


def fmt_summary(summary, unit):
    """'median [min-max]' for several runs, 'median' for one."""
    if summary is None:
        return ""
    text = fmt_number(summary["median"], unit)
    if summary["n"] > 1 and summary["min"] != summary["max"]:
        text += f" [{fmt_number(summary['min'], unit)}-{fmt_number(summary['max'], unit)}]"
    return text


def fmt_goal(entry):
    """'>= 0.95: met' style text."""
    return f"{entry['goal']}: {'met' if entry['met'] else 'MISSED'}"


def table_rows(doc, labels):
    """Build the table's rows (lists of strings)."""
    rows = []
    for metric, (label, unit) in METRICS.items():
        per_target = doc["figures"].get(metric)
        if not per_target:
            continue
        ratios = doc["ratios"].get(metric, {})
        # A ratio without a column of its own shows its value in the goal text.
        goals = [f"{name} {'' if name in RATIO_COLUMNS else fmt_number(r['median'], 'ratio') + ' '}{fmt_goal(r)}"
                 for name, r in ratios.items() if "goal" in r]
        if metric in doc["goals"]:
            goals.append(fmt_goal(doc["goals"][metric]))
        rows.append([label.format(**labels), unit]
                    + [fmt_summary(per_target.get(t), unit) for t in TARGETS]
                    + [fmt_number(ratios[c]["median"], "ratio") if c in ratios else "" for c in RATIO_COLUMNS]
                    + ["; ".join(goals)])
    for key, value in doc["rss_growth_mb"].items():
        _, group, figure, size = key.split(" ")
        label = RSS_LABELS[(group, figure)].format(size=size)
        goal = fmt_goal(doc["goals"][key]) if key in doc["goals"] else ""
        rows.append([label, "MB", f"{value:+.1f}"] + [""] * (len(TARGETS) - 1 + len(RATIO_COLUMNS)) + [goal])
    return rows


def render_table(doc, labels):
    """Return the table as text."""
    header = ["figure", "unit", "ours", "nginx", "Glance", "SeaweedFS", "ours/nginx", "ours/hash", "ours/Glance",
              "ours/S3", "S3/file", "goal"]
    rows = [header] + table_rows(doc, labels)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:-1], widths[2:])]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def write_json(doc, path):
    """Write the document to ``path``."""
    with open(path, "w", encoding="utf-8") as fobj:
        json.dump(doc, fobj, indent=2, sort_keys=False)
        fobj.write("\n")
