"""Command-line options of bench/run.py and the helpers that interpret them."""

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

import loadtest

BENCH_DIR = Path(__file__).resolve().parent
PHASE_NAMES = ("hash", "uploads", "downloads", "ranges", "concurrency", "s3", "cache", "import",
               "get-image")
UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def setup_error(message):
    """Stop with exit status 2: the benchmark cannot be set up."""
    print(f"bench: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_size(text):
    """Parse '1G', '32M', '512KiB', '1048576' into bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(i?B)?\s*", text, re.I)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 32M, 1G)")
    return int(match.group(1)) * UNITS[match.group(2).upper()]


def size_label(nbytes):
    """'1GiB', '32MiB', '1536KiB' or bytes."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= factor and nbytes % factor == 0:
            return f"{nbytes // factor}{unit}"
    return f"{nbytes}B"


def parse_phases(text):
    """Parse --phases: a comma-separated subset of PHASE_NAMES."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PHASE_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown phase(s) {','.join(unknown) or text!r}; "
                                         f"choose from {','.join(PHASE_NAMES)}")
    return names


def parse_env_pair(text):
    """Parse NAME=VALUE for --service-env."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def default_peers_kit(repo):
    """The Glance peers kit: $IMAGEDATA_PEERS_KIT, ../shared/peers, or /work/shared/peers."""
    for candidate in (os.environ.get("IMAGEDATA_PEERS_KIT"), repo.parent / "shared" / "peers",
                      Path("/work/shared/peers")):
        if candidate and Path(candidate, "glance", "start.sh").exists():
            return Path(candidate)
    return None


def parse_args(argv, description=None):
    """Command line; --smoke changes the defaults of size, runs, waits and wrk."""
    parser = argparse.ArgumentParser(prog="bench/run.py", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, help="test file size (default 1G; smoke 32M)")
    parser.add_argument("--runs", type=int, help="runs per figure, median reported (default 3; smoke 1)")
    parser.add_argument("--smoke", action="store_true",
                        help="quick functional pass: 32 MiB, 1 run, short waits, wrk skipped if missing")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--glance", action="store_true",
                        help="also measure the real Glance from the peers kit (if installed)")
    parser.add_argument("--peers-kit", type=Path, help="peers kit folder (default: found automatically)")
    parser.add_argument("--big", type=parse_size, metavar="SIZE",
                        help="also upload+download a SIZE image (e.g. 4G) to show RSS does not grow")
    parser.add_argument("--no-curl", dest="curl", action="store_false", help="skip the curl columns")
    parser.add_argument("--no-wrk", dest="wrk", action="store_false", help="skip the wrk GET-image test")
    parser.add_argument("--wrk-seconds", type=int, help="wrk duration (default 10; smoke 3)")
    parser.add_argument("--load-uploads", type=int, default=4, help="uploads streaming during wrk")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                        default=[16, 64], help="concurrent download counts (default 16,64)")
    parser.add_argument("--idle-wait", type=float,
                        help="max seconds to wait for 85%% idle CPU before each timing (default 5; smoke 1; 0 = off)")
    parser.add_argument("--workers", type=int, help="gunicorn --workers (default: the config's)")
    parser.add_argument("--service-env", type=parse_env_pair, action="append", default=[],
                        metavar="NAME=VALUE", help="extra environment for the service (repeatable)")
    parser.add_argument("--s3", dest="s3", action="store_true", default=None,
                        help="also measure an S3 store on a private SeaweedFS against SeaweedFS's own "
                             "S3 PUT/GET (default: when the weed binary is installed; not with --smoke)")
    parser.add_argument("--no-s3", dest="s3", action="store_false", help="skip the S3 store")
    parser.add_argument("--accel", action="store_true",
                        help="X-Accel-Redirect mode: measure ours through an nginx proxy that serves "
                             "the store under --accel-prefix (sets IMAGEDATA_ACCEL_REDIRECT)")
    parser.add_argument("--accel-prefix", default="/_accel/", help="internal nginx location for --accel")
    parser.add_argument("--repo", type=Path, default=BENCH_DIR.parent, help="imagedata checkout")
    parser.add_argument("--venv", type=Path, help="virtualenv with imagedata installed (default: REPO/.venv)")
    parser.add_argument("--workdir", type=Path, help="parent of the temporary folder (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, data)")
    parser.add_argument("--phases", type=parse_phases, default=PHASE_NAMES, metavar="NAME,...",
                        help=f"measure only these phases (default all: {','.join(PHASE_NAMES)})")
    parser.add_argument("--metrics", metavar="PATH", type=Path,
                        help="at the end, save the service's /metrics scrape (admin token) to PATH")
    opts = parser.parse_args(argv)
    apply_defaults(opts)
    return opts


def apply_defaults(opts):
    """Fill in defaults that depend on --smoke."""
    smoke = opts.smoke
    opts.size = opts.size or parse_size("32M" if smoke else "1G")
    opts.runs = opts.runs or (1 if smoke else 3)
    opts.wrk_seconds = opts.wrk_seconds or (3 if smoke else 10)
    opts.idle_wait = opts.idle_wait if opts.idle_wait is not None else (1.0 if smoke else 5.0)
    if opts.s3 is None and smoke:
        opts.s3 = False  # SeaweedFS and the boto3 reference add ~35 s; --smoke --s3 runs them
    if opts.wrk and not loadtest.wrk_available():
        if not smoke:
            setup_error("wrk not found: apt-get install -y wrk (or pass --no-wrk)")
        print("bench: wrk not installed; skipping the GET-image load test (smoke mode)")
        opts.wrk = False
    if opts.curl and not shutil.which("curl"):
        print("bench: curl not installed; skipping the curl columns")
        opts.curl = False


def find_bin_dir(opts):
    """The folder holding the ``imagedata`` and ``gunicorn`` scripts."""
    candidates = [opts.venv / "bin"] if opts.venv else []
    candidates += [opts.repo / ".venv" / "bin", Path(sys.executable).parent]
    for folder in candidates:
        if (folder / "imagedata").exists() and (folder / "gunicorn").exists():
            return folder
    setup_error("imagedata is not installed: python3 -m venv .venv && .venv/bin/pip install -e . "
                "(or pass --venv)")
